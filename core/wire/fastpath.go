package wire

// The fast path for PUB and HPUB, the ops that carry the traffic. It is an optimisation
// only: the state machine in parser.go alone implements the protocol, and the tests and
// fuzzers check that both give the same results for every way of splitting the input.

import (
	"encoding/binary"
	"math/bits"
)

// fastMsg parses a PUB or HPUB op (o) written the way clients write them, whose control
// line is entirely in buf[i:]: the common case on a busy connection, in one pass. If the
// payload is in buf too it delivers the message, otherwise it starts copying the payload
// (state stPayload). It returns the index after what it consumed and the Handler's error, or
// -1 to leave the op to the state machine, which then reads it again from its first byte.
//
// So errors only ever come from the state machine, and the fast path cannot change what is
// accepted: it takes a subset of the valid control lines (the op name and fields separated
// by single spaces, fields of bytes above ' ', sizes of at most 9 digits, a length within
// MaxControlLine including the '\r') and delivers exactly what the state machine would.
func (p *Parser) fastMsg(buf []byte, i int, o op) (int, error) {
	const pubSp, hpub = 'p' | 'u'<<8 | 'b'<<16 | ' '<<24, 'h' | 'p'<<8 | 'u'<<16 | 'b'<<24
	b := buf[i:]
	k := 4 // after "PUB "
	if o == opPub {
		// |0x20 lowers the letters (exactly, see Parse); the space must be a space.
		if len(b) < 4 || binary.LittleEndian.Uint32(b)|0x00202020 != pubSp {
			return -1, nil
		}
	} else {
		if !p.Headers || len(b) < 5 || binary.LittleEndian.Uint32(b)|0x20202020 != hpub || b[4] != ' ' {
			return -1, nil
		}
		k = 5
	}
	// The argument, '\r' and '\n' within the limit.
	w := b[:min(len(b), k+p.maxControlLine()+1)]
	// Field j is w[ends[j-1]+1 : ends[j]]; field 0 is w[s0 : ends[0]].
	var ends [4]int
	s0, n := k, 0
	for {
		e := fieldEnd(w, k)
		if e == k || e == len(w) || n == len(ends) {
			return -1, nil
		}
		ends[n] = e
		n++
		if w[e] != ' ' {
			k = e
			break
		}
		k = e + 1
	}
	// k is at the end of the last field: "\r\n" or "\n" must follow.
	if w[k] == '\r' {
		if k++; k == len(w) {
			return -1, nil
		}
	}
	if w[k] != '\n' {
		return -1, nil
	}
	subject := w[s0:ends[0]:ends[0]]
	var reply []byte
	hdr, size := -1, -1
	switch {
	case o == opPub && n == 2:
		size = fastSize(w[ends[0]+1 : ends[1]])
	case o == opPub && n == 3:
		reply, size = w[ends[0]+1:ends[1]:ends[1]], fastSize(w[ends[1]+1:ends[2]])
	case o == opHPub && n == 3:
		hdr, size = fastSize(w[ends[0]+1:ends[1]]), fastSize(w[ends[1]+1:ends[2]])
	case o == opHPub && n == 4:
		reply = w[ends[0]+1 : ends[1] : ends[1]]
		hdr, size = fastSize(w[ends[1]+1:ends[2]]), fastSize(w[ends[2]+1:ends[3]])
	}
	if size < 0 || size > p.maxPayload() || (o == opHPub && (hdr < 0 || hdr > size)) {
		return -1, nil
	}
	p.op, p.hdr = o, hdr
	pl := k + 1 // payload start in b
	if size+2 > len(b)-pl {
		// A valid control line whose payload continues in a later call.
		p.startPayload(subject, reply, size)
		return i + pl, nil
	}
	if b[pl+size] != '\r' || b[pl+size+1] != '\n' {
		return -1, nil
	}
	if o == opPub {
		return i + pl + size + 2, p.h.ProcessPub(subject, reply, b[pl:pl+size:pl+size])
	}
	return i + pl + size + 2, p.h.ProcessHPub(subject, reply, hdr, b[pl:pl+size:pl+size])
}

// fieldEnd returns the index of the first byte at or after b[k] that is not above ' ', or
// len(b). It tests 8 bytes at a time: x-0x21 borrows out of exactly the bytes below 0x21
// that are not above 0x7f, and a borrow only disturbs the bytes after it, so the lowest
// flagged byte is the first one below 0x21.
func fieldEnd(b []byte, k int) int {
	for ; k+8 <= len(b); k += 8 {
		x := binary.LittleEndian.Uint64(b[k:])
		if m := (x - 0x2121212121212121) &^ x & 0x8080808080808080; m != 0 {
			return k + bits.TrailingZeros64(m)>>3
		}
	}
	for k < len(b) && b[k] > ' ' {
		k++
	}
	return k
}

// fastSize parses a size of 1 to 9 decimal digits (so it cannot overflow), or returns -1.
func fastSize(b []byte) int {
	if len(b) > 9 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c-'0' > 9 {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

package wire

import "bytes"

// Defaults for Parser settings left at zero (or set negative).
const (
	DefaultMaxControlLine = 4096
	DefaultMaxPayload     = 1 << 20
)

const (
	// maxSize bounds a PUB/HPUB size: larger values are protocol errors, whatever MaxPayload.
	maxSize = 1<<31 - 1
	// msgKeep is the largest split-payload buffer kept for reuse. A bigger one, grown for a
	// rare large message, is dropped after that message so an idle connection does not pin it.
	msgKeep = 64 << 10
)

// Handler receives parsed operations. Every []byte aliases the parser's input buffer or its
// scratch space and is valid only during the call. A non-nil error stops parsing and is
// returned from Parse unchanged.
type Handler interface {
	ProcessConnect(arg []byte) error                                 // JSON text, trimmed
	ProcessInfo(arg []byte) error                                    // JSON text, trimmed
	ProcessPub(subject, reply, payload []byte) error                 // reply nil when absent
	ProcessHPub(subject, reply []byte, hdrLen int, msg []byte) error // msg[:hdrLen] is the header
	ProcessSub(subject, queue, sid []byte) error                     // queue nil when absent
	ProcessUnsub(sid []byte, max int64) error                        // max = -1 when absent
	ProcessPing() error
	ProcessPong() error
	ProcessOK() error
	ProcessErr(arg []byte) error // text after -ERR, trimmed
}

// op is a protocol operation. Route mode will add RS+, RS-, RMSG, LS+, LS- here, with their
// first bytes in stOpStart and their arguments in processArgs/processMsg.
type op uint8

const (
	opNone op = iota
	opConnect
	opInfo
	opPub
	opHPub
	opSub
	opUnsub
	opPing
	opPong
	opOK
	opErr
)

// opName is the op's name in lower case; input is matched case-insensitively.
func opName(o op) string {
	switch o {
	case opConnect:
		return "connect"
	case opInfo:
		return "info"
	case opPub:
		return "pub"
	case opHPub:
		return "hpub"
	case opSub:
		return "sub"
	case opUnsub:
		return "unsub"
	case opPing:
		return "ping"
	case opPong:
		return "pong"
	case opOK:
		return "+ok"
	case opErr:
		return "-err"
	}
	return ""
}

// afterName is the state that follows the op's name.
func afterName(o op) state {
	switch o {
	case opPub, opHPub, opSub, opUnsub:
		return stOpSep
	case opPing, opPong, opOK:
		return stLineEnd
	}
	return stArgStart // CONNECT, INFO, -ERR: the separator is optional
}

type state uint8

const (
	stOpStart  state = iota // expecting the first byte of an op
	stOpP                   // after 'P': PUB, PING or PONG
	stOpName                // matching the rest of opName(p.op) from p.pos
	stOpSep                 // after PUB/HPUB/SUB/UNSUB: a space or tab is required
	stArgStart              // skipping separators before the argument
	stArg                   // collecting the argument up to '\n'
	stPayload               // copying a split payload into p.msg
	stLineEnd               // after PING/PONG/+OK: ignoring bytes up to '\n'
)

// Parser is a NATS client protocol parser: a byte state machine that calls a Handler for
// each complete operation. The exported settings may be changed between Parse calls or from
// inside a Handler call; they apply from the next operation on.
type Parser struct {
	MaxControlLine int  // argument bytes allowed per control line; 0 = 4096
	MaxPayload     int  // max PUB/HPUB size (HPUB: total size); 0 = 1 MiB
	Headers        bool // HPUB allowed; when false, an HPUB control line returns ErrHeadersRequired
	ExpectConnect  bool // when true, any op other than CONNECT returns ErrAuthorization

	h     Handler
	state state
	op    op
	pos   uint8 // next byte of opName(op) to match in stOpName

	scratch []byte // partial control line; cap MaxControlLine+1 (room for a final '\r')

	// A payload split across Parse calls: msg holds subject, reply, payload and the
	// terminator; it is complete when len(msg) == need.
	msg      []byte
	need     int
	subjLen  int
	replyLen int
	hdr      int // HPUB header size of the current message
}

// NewParser returns a parser delivering operations to h, with default settings.
func NewParser(h Handler) *Parser {
	return &Parser{h: h}
}

// Reset returns the parser to its initial state, dropping any partial operation. Settings
// and buffers are kept.
func (p *Parser) Reset() {
	p.state, p.op, p.pos = stOpStart, opNone, 0
	p.scratch = p.scratch[:0]
	p.msg = p.msg[:0]
	if cap(p.msg) > msgKeep {
		p.msg = nil
	}
	p.need, p.subjLen, p.replyLen, p.hdr = 0, 0, 0, 0
}

func (p *Parser) maxControlLine() int {
	if p.MaxControlLine <= 0 {
		return DefaultMaxControlLine
	}
	return p.MaxControlLine
}

func (p *Parser) maxPayload() int {
	if p.MaxPayload <= 0 {
		return DefaultMaxPayload
	}
	return p.MaxPayload
}

// fail resets the parser and returns err: after an error the rest of the input is dropped.
func (p *Parser) fail(err error) error {
	p.Reset()
	return err
}

// Parse consumes buf completely, calling the Handler for each complete operation; a partial
// operation at the end of buf is kept and completed by the next call. Parse never retains
// buf after returning: a control line split across calls is copied into a scratch array
// sized to MaxControlLine (allocated once), a payload split across calls into a reusable
// message buffer (grown once, reused).
//
// Errors are the *Error sentinels of this package, or a Handler's error unchanged. After an
// error the parser is back in its initial state and the rest of buf is dropped; normally the
// connection is closed.
func (p *Parser) Parse(buf []byte) error {
	var args [4][]byte // arguments of the current control line
	i := 0
	for i < len(buf) {
		switch p.state {
		case stOpStart:
			b := buf[i]
			// b|0x20 folds the case of letters exactly: only 'X' and 'x' map to 'x'.
			if p.ExpectConnect && b|0x20 != 'c' {
				return p.fail(ErrAuthorization)
			}
			var o op
			switch b | 0x20 {
			case 'p', 'h':
				o = opPub
				if b|0x20 == 'h' {
					o = opHPub
				}
				if next, err := p.fastMsg(buf, i, o); next >= 0 {
					if err != nil {
						return p.fail(err)
					}
					i = next
					continue
				}
				if o == opPub {
					if i+1 == len(buf) {
						i, p.state = i+1, stOpP
						continue
					}
					switch buf[i+1] | 0x20 {
					case 'i':
						o = opPing
					case 'o':
						o = opPong
					}
				}
			case 's':
				o = opSub
			case 'u':
				o = opUnsub
			case 'c':
				o = opConnect
			case 'i':
				o = opInfo
			default:
				switch b {
				case '+':
					o = opOK
				case '-':
					o = opErr
				default:
					return p.fail(ErrUnknownOp)
				}
			}
			p.op = o
			if name := opName(o); len(buf)-i >= len(name) && hasPrefixFold(buf[i:], name) {
				i += len(name) // the whole name is here
				p.state = afterName(o)
				continue
			}
			i++ // match the rest byte by byte, failing where it differs
			p.pos, p.state = 1, stOpName

		case stOpP:
			switch buf[i] | 0x20 {
			case 'u':
				p.op = opPub
			case 'i':
				p.op = opPing
			case 'o':
				p.op = opPong
			default:
				return p.fail(ErrUnknownOp)
			}
			i++
			p.pos, p.state = 2, stOpName

		case stOpName:
			name := opName(p.op)
			for ; i < len(buf) && int(p.pos) < len(name); i++ {
				if !eqFold(buf[i], name[p.pos]) {
					return p.fail(ErrUnknownOp)
				}
				p.pos++
			}
			if int(p.pos) == len(name) {
				p.state = afterName(p.op)
			}

		case stOpSep:
			if b := buf[i]; b != ' ' && b != '\t' {
				return p.fail(ErrUnknownOp)
			}
			i++
			p.state = stArgStart
			fallthrough

		case stArgStart:
			for i < len(buf) && (buf[i] == ' ' || buf[i] == '\t') {
				i++
			}
			if i < len(buf) {
				p.state = stArg
			}

		case stArg:
			if p.op == opConnect || p.op == opInfo || p.op == opErr {
				line, n, done, err := p.readLine(buf[i:])
				i += n
				if err == nil && done {
					p.state = stOpStart
					err = p.processText(trim(line))
				}
				if err != nil {
					return p.fail(err)
				}
				continue
			}
			n, c, done, err := p.readArgs(buf[i:], &args)
			i += c
			if err != nil {
				return p.fail(err)
			}
			if !done {
				continue // all of buf is in the scratch array
			}
			p.state = stOpStart
			if p.op == opPub || p.op == opHPub {
				i, err = p.processMsg(buf, i, &args, n)
			} else {
				err = p.processArgs(&args, n)
			}
			if err != nil {
				return p.fail(err)
			}

		case stPayload:
			n := copy(p.msg[len(p.msg):p.need], buf[i:])
			p.msg = p.msg[:len(p.msg)+n]
			i += n
			if len(p.msg) < p.need {
				continue
			}
			p.state = stOpStart
			if err := p.deliverSplit(); err != nil {
				return p.fail(err)
			}

		case stLineEnd:
			if i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' {
				i += 2 // the usual case, without a search
			} else if j := bytes.IndexByte(buf[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(buf)
				continue
			}
			p.state = stOpStart
			var err error
			switch p.op {
			case opPing:
				err = p.h.ProcessPing()
			case opPong:
				err = p.h.ProcessPong()
			default:
				err = p.h.ProcessOK()
			}
			if err != nil {
				return p.fail(err)
			}
		}
	}
	return nil
}

// readLine collects the argument part of a control line from b, up to and excluding '\n'.
// It returns the line (aliasing b or the scratch array) with done set, and n, the number of
// bytes of b consumed (including the '\n'). Without a '\n' in b, all of b goes into the
// scratch array and done is false. The limit is checked on every call, so an endless line
// fails as soon as it is too long, without buffering more than MaxControlLine+1 bytes.
func (p *Parser) readLine(b []byte) (line []byte, n int, done bool, err error) {
	limit := p.maxControlLine()
	room := limit + 2 - len(p.scratch) // a line may hold max bytes, a '\r' and the '\n'
	if room <= 0 {
		return nil, 0, false, ErrMaxControlLine // MaxControlLine was lowered mid-line
	}
	w := b
	if len(w) > room {
		w = w[:room]
	}
	if j := bytes.IndexByte(w, '\n'); j >= 0 {
		if len(p.scratch) == 0 {
			line = w[:j:j]
		} else {
			p.growScratch(limit + 1)
			p.scratch = append(p.scratch, w[:j]...)
			line = p.scratch
			p.scratch = p.scratch[:0] // the array is reused only by the next line
		}
		if k := len(line); k > limit && (k > limit+1 || line[k-1] != '\r') {
			return nil, j + 1, false, ErrMaxControlLine
		}
		return line, j + 1, true, nil
	}
	// No '\n' within reach: the line continues in a later call, or is already too long.
	if k := len(p.scratch) + len(w); k > limit && (k > limit+1 || w[len(w)-1] != '\r') {
		return nil, len(w), false, ErrMaxControlLine
	}
	p.growScratch(limit + 1)
	p.scratch = append(p.scratch, w...)
	return nil, len(w), false, nil
}

// readArgs is readLine for ops whose arguments are split into fields (all but CONNECT,
// INFO and -ERR). When the line is entirely in b it splits it in the same pass that looks
// for the '\n', the hot path. It returns the number of fields (see scanArgs), the number of
// bytes of b consumed, and whether the line is complete.
func (p *Parser) readArgs(b []byte, args *[4][]byte) (n, consumed int, done bool, err error) {
	if len(p.scratch) == 0 {
		limit := p.maxControlLine()
		w := b
		if len(w) > limit+2 {
			w = w[:limit+2]
		}
		n, end := scanArgs(w, args)
		if end >= 0 {
			if k := end; k > limit && (k > limit+1 || w[k-1] != '\r') {
				return 0, end + 1, false, ErrMaxControlLine
			}
			return n, end + 1, true, nil
		}
	}
	line, consumed, done, err := p.readLine(b)
	if done {
		n, _ = scanArgs(line, args)
	}
	return n, consumed, done, err
}

// growScratch makes the scratch array hold at least n bytes, keeping its content. It
// allocates once, or again only if MaxControlLine grows.
func (p *Parser) growScratch(n int) {
	if cap(p.scratch) < n {
		s := make([]byte, len(p.scratch), n)
		copy(s, p.scratch)
		p.scratch = s
	}
}

// processMsg handles the n arguments of a complete PUB or HPUB control line whose payload
// starts at buf[i]. If payload and terminator are in buf it delivers the message and returns
// the index after it; otherwise it starts copying into the message buffer.
func (p *Parser) processMsg(buf []byte, i int, args *[4][]byte, n int) (int, error) {
	var subject, reply []byte
	hdr, size := -1, -1
	if p.op == opPub {
		switch n {
		case 2:
			subject, size = args[0], parseSize(args[1])
		case 3:
			subject, reply, size = args[0], args[1], parseSize(args[2])
		default:
			return i, ErrProtocol
		}
	} else {
		if !p.Headers {
			return i, ErrHeadersRequired
		}
		switch n {
		case 3:
			subject, hdr, size = args[0], parseSize(args[1]), parseSize(args[2])
		case 4:
			subject, reply = args[0], args[1]
			hdr, size = parseSize(args[2]), parseSize(args[3])
		default:
			return i, ErrProtocol
		}
		if hdr < 0 || hdr > size {
			return i, ErrProtocol
		}
	}
	if size < 0 {
		return i, ErrProtocol
	}
	if size > p.maxPayload() {
		return i, ErrMaxPayload
	}
	p.hdr = hdr
	if rest := buf[i:]; size+2 <= len(rest) {
		// The payload is in buf: jump over it.
		if rest[size] != '\r' || rest[size+1] != '\n' {
			return i, ErrUnknownOp
		}
		return i + size + 2, p.deliver(subject, reply, rest[:size:size])
	}
	p.startPayload(subject, reply, size)
	return i, nil
}

// startPayload saves subject and reply, which alias the caller's buffer or the scratch
// array, into the message buffer, which then receives the payload and terminator.
func (p *Parser) startPayload(subject, reply []byte, size int) {
	need := len(subject) + len(reply) + size + 2
	if cap(p.msg) < need {
		c := need
		if need <= msgKeep {
			// Grow geometrically up to msgKeep, so a few sizes do not mean a few allocations.
			c = max(need, min(2*cap(p.msg), msgKeep))
		}
		p.msg = make([]byte, 0, c)
	}
	p.msg = append(p.msg[:0], subject...)
	p.msg = append(p.msg, reply...)
	p.subjLen, p.replyLen, p.need = len(subject), len(reply), need
	p.state = stPayload
}

// deliverSplit delivers the message completed in the message buffer.
func (p *Parser) deliverSplit() error {
	m := p.msg
	end := len(m) - 2
	if m[end] != '\r' || m[end+1] != '\n' {
		return ErrUnknownOp
	}
	s, r := p.subjLen, p.subjLen+p.replyLen
	var reply []byte
	if r > s {
		reply = m[s:r:r]
	}
	err := p.deliver(m[:s:s], reply, m[r:end:end])
	p.msg = p.msg[:0]
	if cap(p.msg) > msgKeep {
		p.msg = nil
	}
	return err
}

func (p *Parser) deliver(subject, reply, msg []byte) error {
	if p.op == opHPub {
		return p.h.ProcessHPub(subject, reply, p.hdr, msg)
	}
	return p.h.ProcessPub(subject, reply, msg)
}

// processArgs handles the n arguments of a complete SUB or UNSUB control line.
func (p *Parser) processArgs(args *[4][]byte, n int) error {
	if p.op == opSub {
		switch n {
		case 2:
			return p.h.ProcessSub(args[0], nil, args[1])
		case 3:
			return p.h.ProcessSub(args[0], args[1], args[2])
		}
		return ErrProtocol
	}
	switch n { // UNSUB
	case 1:
		return p.h.ProcessUnsub(args[0], -1)
	case 2:
		m := parseInt64(args[1])
		if m < 0 {
			return ErrProtocol
		}
		return p.h.ProcessUnsub(args[0], m)
	}
	return ErrProtocol
}

// processText handles the trimmed argument of CONNECT, INFO or -ERR.
func (p *Parser) processText(arg []byte) error {
	switch p.op {
	case opConnect:
		return p.h.ProcessConnect(arg)
	case opInfo:
		return p.h.ProcessInfo(arg)
	}
	return p.h.ProcessErr(arg)
}

// isSep reports whether c separates arguments: space, tab, or a CR (a CR before the '\n'
// ends the line; elsewhere nats-server treats it as a separator too).
func isSep(c byte) bool {
	return c <= ' ' && (c == ' ' || c == '\t' || c == '\r')
}

// scanArgs splits b into fields at runs of separators, up to the first '\n'. It returns
// the number of fields, of which only the first len(args) are stored (as capped sub-slices of
// b), and the index of the '\n', or -1 if there is none.
func scanArgs(b []byte, args *[4][]byte) (n, end int) {
	i := 0
	for i < len(b) {
		c := b[i]
		if isSep(c) {
			i++
			continue
		}
		if c == '\n' {
			return n, i
		}
		start := i
		for i++; i < len(b); i++ {
			if c := b[i]; c <= ' ' && (isSep(c) || c == '\n') {
				break
			}
		}
		if n < len(args) {
			args[n] = b[start:i:i]
		}
		n++
	}
	return n, -1
}

// trim removes leading and trailing separators.
func trim(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSep(b[i]) {
		i++
	}
	for j > i && isSep(b[j-1]) {
		j--
	}
	return b[i:j:j]
}

// parseSize parses an unsigned decimal size up to maxSize; it returns -1 for anything else.
func parseSize(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	n := 0
	for _, c := range b {
		d := int(c) - '0'
		if d < 0 || d > 9 {
			return -1
		}
		n = n*10 + d
		if n > maxSize {
			return -1
		}
	}
	return n
}

// parseInt64 parses an unsigned decimal int64; it returns -1 for anything else, including
// overflow.
func parseInt64(b []byte) int64 {
	if len(b) == 0 {
		return -1
	}
	const cutoff = (1<<63 - 1) / 10
	var n int64
	for _, c := range b {
		d := int64(c) - '0'
		if d < 0 || d > 9 || n > cutoff {
			return -1
		}
		n = n*10 + d
		if n < 0 {
			return -1
		}
	}
	return n
}

// hasPrefixFold reports whether b starts with name (lower case), ignoring the case of letters.
func hasPrefixFold(b []byte, name string) bool {
	if len(b) < len(name) {
		return false
	}
	for j := 0; j < len(name); j++ {
		if !eqFold(b[j], name[j]) {
			return false
		}
	}
	return true
}

// eqFold reports whether input byte b matches c, a lower-case letter or a symbol of an op
// name, ignoring the case of letters.
func eqFold(b, c byte) bool {
	return b == c || ('a' <= c && c <= 'z' && b|0x20 == c)
}

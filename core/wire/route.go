package wire

import "bytes"

// The route protocol spoken between Starling servers of one cluster (spec §16): the
// reference's, with the account token on every interest and message line.
//
//	INFO {json}            CONNECT {json}          PING  PONG  +OK  -ERR 'text'
//	RS+ <account> <subject>                      plain interest appeared
//	RS+ <account> <subject> <queue> <weight>     queue interest; weight = local members
//	RS- <account> <subject> [<queue>]            interest gone
//	RMSG <account> <subject> [<reply>] <size>                    (payload follows)
//	RMSG <account> <subject> + <reply> <queue>... <size>         the sender chose us for these queues
//	RMSG <account> <subject> | <queue>... <size>                 same, without a reply
//	HMSG ... <hdr> <size>                                        as RMSG, with a header block
//
// Routes are few and busy, so this parser is simpler than the client one: it works on whole
// operations in the read buffer and copies only an operation that straddles two reads.

// RoutedMsg is one RMSG/HMSG. Every slice aliases the parser's input and is valid only
// during the RouteMsg call.
type RoutedMsg struct {
	Account        []byte
	Subject, Reply []byte
	Queues         [][]byte // the queue groups the sender chose this server for
	HdrLen         int      // header block size at the start of Msg; 0 = no header
	Msg            []byte   // header block + payload
}

// RouteHandler receives parsed route operations; a non-nil error stops parsing and is
// returned from Parse.
type RouteHandler interface {
	RouteInfo(arg []byte) error
	RouteConnect(arg []byte) error
	RouteSub(account, subject, queue []byte, weight int) error // queue nil for plain interest
	RouteUnsub(account, subject, queue []byte) error
	RouteMsg(m *RoutedMsg) error
	RoutePing() error
	RoutePong() error
	RouteErr(arg []byte) error
}

// routeLineMax is the control-line limit of a route when none is set: 16× a client's, as the
// reference allows (an RMSG may list many queue groups).
const routeLineMax = 16 * DefaultMaxControlLine

// RouteParser parses the route protocol.
type RouteParser struct {
	MaxControlLine int // 0 = 64 KiB
	MaxPayload     int // 0 = 1 MiB

	h      RouteHandler
	pend   []byte // an operation split across Parse calls
	fields [][]byte
	m      RoutedMsg
}

// NewRouteParser returns a parser delivering to h.
func NewRouteParser(h RouteHandler) *RouteParser { return &RouteParser{h: h} }

func (p *RouteParser) maxLine() int {
	if p.MaxControlLine <= 0 {
		return routeLineMax
	}
	return p.MaxControlLine
}

func (p *RouteParser) maxPayload() int {
	if p.MaxPayload <= 0 {
		return DefaultMaxPayload
	}
	return p.MaxPayload
}

// Parse consumes buf, calling the handler for each complete operation and keeping a
// trailing partial one for the next call. After an error the partial state is dropped.
func (p *RouteParser) Parse(buf []byte) error {
	if len(p.pend) > 0 {
		n, err := p.finishPending(buf)
		if err != nil {
			p.pend = p.pend[:0]
			return err
		}
		buf = buf[n:]
	}
	for len(buf) > 0 {
		n, _, err := p.parseOne(buf)
		if err != nil {
			return err
		}
		if n == 0 {
			p.pend = append(p.pend[:0], buf...)
			return nil
		}
		buf = buf[n:]
	}
	if cap(p.pend) > msgKeep && len(p.pend) == 0 {
		p.pend = nil
	}
	return nil
}

// finishPending completes the pending operation from the front of buf; it returns how many
// bytes of buf it used (all of them when the operation is still incomplete).
func (p *RouteParser) finishPending(buf []byte) (int, error) {
	used := 0
	if bytes.IndexByte(p.pend, '\n') < 0 {
		j := bytes.IndexByte(buf, '\n')
		if j < 0 {
			if len(p.pend)+len(buf) > p.maxLine()+1 {
				return 0, ErrMaxControlLine
			}
			p.pend = append(p.pend, buf...)
			return len(buf), nil
		}
		p.pend = append(p.pend, buf[:j+1]...)
		used = j + 1
	}
	n, need, err := p.parseOne(p.pend)
	if err != nil || n > 0 {
		p.pend = p.pend[:0]
		return used, err
	}
	take := min(need-len(p.pend), len(buf)-used)
	p.pend = append(p.pend, buf[used:used+take]...)
	used += take
	if len(p.pend) < need {
		return used, nil
	}
	_, _, err = p.parseOne(p.pend)
	p.pend = p.pend[:0]
	return used, err
}

// parseOne handles the operation at the start of b. It returns the bytes consumed, or 0 when
// the operation is incomplete, with need = its total length when the control line is known.
func (p *RouteParser) parseOne(b []byte) (n, need int, err error) {
	j := bytes.IndexByte(b, '\n')
	if j < 0 {
		if len(b) > p.maxLine()+1 {
			return 0, 0, ErrMaxControlLine
		}
		return 0, 0, nil
	}
	if j > p.maxLine()+1 {
		return 0, 0, ErrMaxControlLine
	}
	line := b[:j]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	name, rest := cutOp(line)
	switch {
	case opIs(name, "rmsg"), opIs(name, "hmsg"):
		size, err := p.parseMsgLine(rest, name[0]|0x20 == 'h')
		if err != nil {
			return 0, 0, err
		}
		total := j + 1 + size + 2
		if len(b) < total {
			return 0, total, nil
		}
		if b[j+1+size] != '\r' || b[j+2+size] != '\n' {
			return 0, 0, ErrUnknownOp
		}
		p.m.Msg = b[j+1 : j+1+size : j+1+size]
		return total, 0, p.h.RouteMsg(&p.m)
	case opIs(name, "rs+"):
		f := p.split(rest)
		switch len(f) {
		case 2:
			return j + 1, 0, p.h.RouteSub(f[0], f[1], nil, 0)
		case 4:
			w := parseSize(f[3])
			if w < 0 {
				return 0, 0, ErrProtocol
			}
			return j + 1, 0, p.h.RouteSub(f[0], f[1], f[2], w)
		}
		return 0, 0, ErrProtocol
	case opIs(name, "rs-"):
		f := p.split(rest)
		switch len(f) {
		case 2:
			return j + 1, 0, p.h.RouteUnsub(f[0], f[1], nil)
		case 3:
			return j + 1, 0, p.h.RouteUnsub(f[0], f[1], f[2])
		}
		return 0, 0, ErrProtocol
	case opIs(name, "ping"):
		return j + 1, 0, p.h.RoutePing()
	case opIs(name, "pong"):
		return j + 1, 0, p.h.RoutePong()
	case opIs(name, "+ok"):
		return j + 1, 0, nil
	case opIs(name, "info"):
		return j + 1, 0, p.h.RouteInfo(trim(rest))
	case opIs(name, "connect"):
		return j + 1, 0, p.h.RouteConnect(trim(rest))
	case opIs(name, "-err"):
		return j + 1, 0, p.h.RouteErr(trim(rest))
	}
	return 0, 0, ErrUnknownOp
}

// parseMsgLine fills p.m from the arguments of RMSG (hdr false) or HMSG and returns the size.
func (p *RouteParser) parseMsgLine(rest []byte, hdr bool) (int, error) {
	f := p.split(rest)
	nums := 1
	if hdr {
		nums = 2
	}
	if len(f) < 2+nums {
		return 0, ErrProtocol
	}
	args := f[2 : len(f)-nums]
	m := &p.m
	m.Account, m.Subject, m.Reply, m.Queues = f[0], f[1], nil, nil
	switch {
	case len(args) >= 2 && len(args[0]) == 1 && args[0][0] == '+':
		m.Reply, m.Queues = args[1], args[2:]
	case len(args) >= 1 && len(args[0]) == 1 && args[0][0] == '|':
		m.Queues = args[1:]
	case len(args) == 1:
		m.Reply = args[0]
	case len(args) != 0:
		return 0, ErrProtocol
	}
	size := parseSize(f[len(f)-1])
	m.HdrLen = 0
	if hdr {
		m.HdrLen = parseSize(f[len(f)-2])
		if m.HdrLen < 0 || m.HdrLen > size {
			return 0, ErrProtocol
		}
	}
	if size < 0 {
		return 0, ErrProtocol
	}
	if size > p.maxPayload() {
		return 0, ErrMaxPayload
	}
	return size, nil
}

// split cuts b into fields at spaces and tabs into the reused fields slice.
func (p *RouteParser) split(b []byte) [][]byte {
	f := p.fields[:0]
	i := 0
	for i < len(b) {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i == len(b) {
			break
		}
		s := i
		for i < len(b) && b[i] != ' ' && b[i] != '\t' {
			i++
		}
		f = append(f, b[s:i:i])
	}
	p.fields = f
	return f
}

// cutOp splits a control line into the op name and the rest.
func cutOp(line []byte) (name, rest []byte) {
	i := 0
	for i < len(line) && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	return line[:i], line[i:]
}

// opIs compares an op name case-insensitively with a lower-case name.
func opIs(b []byte, name string) bool { return len(b) == len(name) && hasPrefixFold(b, name) }

// AppendRouteSub appends "RS+ <account> <subject>[ <queue> <weight>]\r\n".
func AppendRouteSub(dst []byte, account, subject, queue string, weight int) []byte {
	dst = append(dst, "RS+ "...)
	dst = append(dst, account...)
	dst = append(dst, ' ')
	dst = append(dst, subject...)
	if queue != "" {
		dst = append(dst, ' ')
		dst = append(dst, queue...)
		dst = append(dst, ' ')
		dst = AppendInt(dst, weight)
	}
	return append(dst, '\r', '\n')
}

// AppendRouteUnsub appends "RS- <account> <subject>[ <queue>]\r\n".
func AppendRouteUnsub(dst []byte, account, subject, queue string) []byte {
	dst = append(dst, "RS- "...)
	dst = append(dst, account...)
	dst = append(dst, ' ')
	dst = append(dst, subject...)
	if queue != "" {
		dst = append(dst, ' ')
		dst = append(dst, queue...)
	}
	return append(dst, '\r', '\n')
}

// AppendRouteMsg appends the control line of an RMSG (hdrLen 0) or HMSG; the caller appends
// header block, payload and CR LF.
func AppendRouteMsg(dst []byte, account string, subject, reply []byte, queues []string, hdrLen, size int) []byte {
	if hdrLen > 0 {
		dst = append(dst, "HMSG "...)
	} else {
		dst = append(dst, "RMSG "...)
	}
	dst = append(dst, account...)
	dst = append(dst, ' ')
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	// A reply that reads like a marker is written in the marked form so it cannot be misread.
	odd := len(reply) == 1 && (reply[0] == '+' || reply[0] == '|')
	switch {
	case len(queues) > 0 || odd:
		if len(reply) > 0 {
			dst = append(dst, '+', ' ')
			dst = append(dst, reply...)
		} else {
			dst = append(dst, '|')
		}
		dst = append(dst, ' ')
		for _, q := range queues {
			dst = append(dst, q...)
			dst = append(dst, ' ')
		}
	case len(reply) > 0:
		dst = append(dst, reply...)
		dst = append(dst, ' ')
	}
	if hdrLen > 0 {
		dst = AppendInt(dst, hdrLen)
		dst = append(dst, ' ')
	}
	dst = AppendInt(dst, size)
	return append(dst, '\r', '\n')
}

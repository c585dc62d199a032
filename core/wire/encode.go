package wire

// Complete protocol lines without arguments.
const (
	PingLine = "PING\r\n"
	PongLine = "PONG\r\n"
	OKLine   = "+OK\r\n"
)

// AppendInfo appends "INFO <json> \r\n". The space before CR LF is what nats-server sends.
func AppendInfo(dst, json []byte) []byte {
	dst = append(dst, "INFO "...)
	dst = append(dst, json...)
	return append(dst, " \r\n"...)
}

// AppendErr appends "-ERR '<text>'\r\n".
func AppendErr(dst []byte, text string) []byte {
	dst = append(dst, "-ERR '"...)
	dst = append(dst, text...)
	return append(dst, "'\r\n"...)
}

// AppendMsg appends the control line "MSG <subject> <sid> [reply ]<size>\r\n"; the caller
// appends the payload and its CR LF.
func AppendMsg(dst, subject []byte, sid string, reply []byte, size int) []byte {
	dst = append(dst, "MSG "...)
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	dst = append(dst, sid...)
	dst = append(dst, ' ')
	if len(reply) > 0 {
		dst = append(dst, reply...)
		dst = append(dst, ' ')
	}
	dst = AppendInt(dst, size)
	return append(dst, '\r', '\n')
}

// AppendHMsg appends the control line "HMSG <subject> <sid> [reply ]<hdr> <total>\r\n"; the
// caller appends header block, payload and CR LF.
func AppendHMsg(dst, subject []byte, sid string, reply []byte, hdrLen, total int) []byte {
	dst = append(dst, "HMSG "...)
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	dst = append(dst, sid...)
	dst = append(dst, ' ')
	if len(reply) > 0 {
		dst = append(dst, reply...)
		dst = append(dst, ' ')
	}
	dst = AppendInt(dst, hdrLen)
	dst = append(dst, ' ')
	dst = AppendInt(dst, total)
	return append(dst, '\r', '\n')
}

// AppendPub appends the control line "PUB <subject> [reply ]<size>\r\n".
func AppendPub(dst, subject, reply []byte, size int) []byte {
	dst = append(dst, "PUB "...)
	dst = appendSubjectReply(dst, subject, reply)
	dst = AppendInt(dst, size)
	return append(dst, '\r', '\n')
}

// AppendHPub appends the control line "HPUB <subject> [reply ]<hdr> <total>\r\n".
func AppendHPub(dst, subject, reply []byte, hdrLen, total int) []byte {
	dst = append(dst, "HPUB "...)
	dst = appendSubjectReply(dst, subject, reply)
	dst = AppendInt(dst, hdrLen)
	dst = append(dst, ' ')
	dst = AppendInt(dst, total)
	return append(dst, '\r', '\n')
}

// AppendSub appends "SUB <subject> [queue ]<sid>\r\n".
func AppendSub(dst, subject, queue []byte, sid string) []byte {
	dst = append(dst, "SUB "...)
	dst = appendSubjectReply(dst, subject, queue)
	dst = append(dst, sid...)
	return append(dst, '\r', '\n')
}

// AppendUnsub appends "UNSUB <sid>[ max]\r\n"; a negative max is left out.
func AppendUnsub(dst []byte, sid string, max int64) []byte {
	dst = append(dst, "UNSUB "...)
	dst = append(dst, sid...)
	if max >= 0 {
		dst = append(dst, ' ')
		dst = appendUint(dst, uint64(max))
	}
	return append(dst, '\r', '\n')
}

// appendSubjectReply appends "<subject> [reply ]".
func appendSubjectReply(dst, subject, reply []byte) []byte {
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	if len(reply) > 0 {
		dst = append(dst, reply...)
		dst = append(dst, ' ')
	}
	return dst
}

// AppendInt appends the decimal form of n, like strconv.AppendInt(dst, int64(n), 10).
func AppendInt(dst []byte, n int) []byte {
	if n < 0 {
		// -n overflows for the smallest int, but uint64 of it is still the magnitude.
		return appendUint(append(dst, '-'), uint64(-int64(n)))
	}
	return appendUint(dst, uint64(n))
}

// digits2 holds "00" to "99", to convert two digits at a time.
const digits2 = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

func appendUint(dst []byte, u uint64) []byte {
	if u < 10 {
		return append(dst, byte('0'+u))
	}
	var b [20]byte
	i := len(b)
	for u >= 100 {
		q := u / 100
		j := (u - q*100) * 2
		i -= 2
		b[i], b[i+1] = digits2[j], digits2[j+1]
		u = q
	}
	if u >= 10 {
		i -= 2
		b[i], b[i+1] = digits2[2*u], digits2[2*u+1]
	} else {
		i--
		b[i] = byte('0' + u)
	}
	return append(dst, b[i:]...)
}

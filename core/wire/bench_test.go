package wire

import (
	"bytes"
	"fmt"
	"testing"
)

// opsPerBuf is the number of ops in a benchmark buffer: one Parse call per b.N iteration
// would measure the call; many ops per buffer measure the per-op cost, as on a busy
// connection whose read buffer holds many messages.
const opsPerBuf = 100

func repeatOp(op []byte) []byte { return bytes.Repeat(op, opsPerBuf) }

func pubOp(size int) []byte {
	op := AppendPub(nil, []byte("foo.bar"), nil, size)
	op = append(op, bytes.Repeat([]byte("x"), size)...)
	return append(op, "\r\n"...)
}

// benchParse reports ns/op per protocol op (not per buffer) and bytes/s of protocol.
func benchParse(b *testing.B, p *Parser, buf []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(buf) / opsPerBuf))
	b.ResetTimer()
	for i := 0; i < b.N; i += opsPerBuf {
		if err := p.Parse(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePub(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			benchParse(b, NewParser(&nopHandler{}), repeatOp(pubOp(size)))
		})
	}
}

func BenchmarkParsePubReply(b *testing.B) {
	op := AppendPub(nil, []byte("foo.bar"), []byte("_INBOX.Y1TdwbQmB4l52NaYkZ8w3e.4"), 16)
	op = append(op, "0123456789abcdef\r\n"...)
	benchParse(b, NewParser(&nopHandler{}), repeatOp(op))
}

func BenchmarkParseHPub(b *testing.B) {
	hdr := "NATS/1.0\r\nBar: Baz\r\n\r\n"
	payload := "0123456789abcdef"
	op := AppendHPub(nil, []byte("foo.bar"), nil, len(hdr), len(hdr)+len(payload))
	op = append(op, hdr+payload+"\r\n"...)
	p := NewParser(&nopHandler{})
	p.Headers = true
	benchParse(b, p, repeatOp(op))
}

func BenchmarkParseSub(b *testing.B) {
	benchParse(b, NewParser(&nopHandler{}), repeatOp([]byte("SUB foo.bar.baz  123\r\n")))
}

func BenchmarkParsePing(b *testing.B) {
	benchParse(b, NewParser(&nopHandler{}), repeatOp([]byte(PingLine)))
}

// BenchmarkParsePubSplit parses one PUB per two Parse calls, the payload split in the
// middle: the slow path that copies subject and payload into the message buffer.
func BenchmarkParsePubSplit(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			op := pubOp(size)
			cut := len(op) - size/2 - 2
			first, second := op[:cut], op[cut:]
			p := NewParser(&nopHandler{})
			b.ReportAllocs()
			b.SetBytes(int64(len(op)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := p.Parse(first); err != nil {
					b.Fatal(err)
				}
				if err := p.Parse(second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendMsg(b *testing.B) {
	subject, reply := []byte("foo.bar"), []byte("_INBOX.Y1TdwbQmB4l52NaYkZ8w3e.4")
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(AppendMsg(nil, subject, "12", reply, 1024))))
	for i := 0; i < b.N; i++ {
		dst = AppendMsg(dst[:0], subject, "12", reply, 1024)
	}
}

func BenchmarkAppendInt(b *testing.B) {
	dst := make([]byte, 0, 32)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst = AppendInt(dst[:0], i)
	}
}

package core

import "testing"

// BenchmarkTraceHeadersMiss is what every HPUB pays for message tracing when it does not ask
// for a trace: one scan of the header block, no allocation.
func BenchmarkTraceHeadersMiss(b *testing.B) {
	hdr := []byte("NATS/1.0\r\nNats-Msg-Id: 0123456789\r\nContent-Type: application/json\r\n\r\n")
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for range b.N {
		if traceHeaders(hdr) != nil {
			b.Fatal("trace")
		}
	}
}

func TestTraceHeaders(t *testing.T) {
	h := traceHeaders([]byte("NATS/1.0\r\nNats-Trace-Dest: trace.x\r\nNats-Trace-Only: true\r\nA: 1\r\nA: 2\r\n\r\n"))
	if h["Nats-Trace-Dest"][0] != "trace.x" || h["Nats-Trace-Only"][0] != "true" || len(h["A"]) != 2 {
		t.Fatalf("headers %v", h)
	}
	if traceHeaders([]byte("NATS/1.0\r\nNats-Trace-Dest: \r\n\r\n")) != nil {
		t.Fatal("an empty destination traced")
	}
}

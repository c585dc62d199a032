package memstore

import (
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/storetest"
)

func open(opts Options) storetest.OpenFunc {
	return func(tb testing.TB, _ string) stores.Store {
		s, err := New(opts)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
}

func TestSuite(t *testing.T) {
	storetest.Run(t, open(Options{}), storetest.Caps{})
}

// TestSuiteSmallChunks runs the suite with tiny chunks so that every operation crosses
// chunk boundaries and recycles chunks.
func TestSuiteSmallChunks(t *testing.T) {
	storetest.Run(t, open(Options{ChunkMsgs: 3, ChunkBytes: 100}), storetest.Caps{})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, open(Options{}))
}

func TestNewOptions(t *testing.T) {
	if _, err := New(Options{ChunkBytes: 2 << 30}); err == nil {
		t.Fatal("ChunkBytes > 1 GiB accepted")
	}
	if _, err := New(Options{Limits: &stores.LimitsSet{Global: stores.Limits{MaxMsgs: -1}}}); err == nil {
		t.Fatal("invalid limits accepted")
	}
	s, err := New(Options{Limits: &stores.LimitsSet{Global: stores.Limits{MaxChannels: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChannel("a", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChannel("b", 2); err != stores.ErrTooManyChannels {
		t.Fatalf("Options.Limits not applied: %v", err)
	}
}

// TestSteadyStateAllocs: with limits in force, Append and Sync allocate nothing (the data
// is copied into recycled chunk arenas), and Load into a big-enough Msg allocates nothing.
func TestSteadyStateAllocs(t *testing.T) {
	for _, c := range []struct{ batch, size int }{{1, 16}, {64, 128}, {1024, 1024}, {4, 64 << 10}, {64, 64 << 10}} {
		s, _ := New(Options{Limits: &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 5000, MaxBytes: 16 << 20}}})
		ch, _ := s.CreateChannel("foo", 1)
		data := make([]byte, c.size)
		batch := make([]stores.Msg, c.batch)
		next := uint64(1)
		add := func() {
			for i := range batch {
				batch[i] = stores.Msg{Seq: next, Time: int64(next), Data: data}
				next++
			}
			if err := ch.Msgs.Append(batch); err != nil {
				t.Fatal(err)
			}
			if err := ch.Msgs.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		for next < 8000 {
			add()
		}
		if a := testing.AllocsPerRun(50, add); a != 0 {
			t.Errorf("Append batch=%d size=%d: %v allocs/op", c.batch, c.size, a)
		}
		m := stores.Msg{Data: make([]byte, 0, c.size)}
		if a := testing.AllocsPerRun(200, func() {
			if err := ch.Msgs.Load(next-7, &m); err != nil {
				t.Fatal(err)
			}
			ch.Msgs.SeqAtTime(int64(next - 100))
		}); a != 0 {
			t.Errorf("Load/SeqAtTime size=%d: %v allocs/op", c.size, a)
		}
	}
}

// TestChunkRecycling checks that memory follows the limits: the number of chunks stays
// bounded while a limited channel churns through many messages.
func TestChunkRecycling(t *testing.T) {
	s, _ := New(Options{ChunkMsgs: 10, ChunkBytes: 1000, Limits: &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 25}}})
	ch, _ := s.CreateChannel("foo", 1)
	ms := ch.Msgs.(*msgStore)
	for seq := uint64(1); seq <= 10000; seq++ {
		if err := ms.Append([]stores.Msg{{Seq: seq, Time: int64(seq), Data: make([]byte, seq%120)}}); err != nil {
			t.Fatal(err)
		}
		if n := len(ms.chunks); n > 25/10+2 {
			t.Fatalf("seq %d: %d chunks for 25 messages", seq, n)
		}
		for _, c := range ms.chunks {
			if len(c.ents) > 1 && len(c.buf) > 1000 {
				t.Fatalf("seq %d: chunk arena of %d bytes beyond ChunkBytes", seq, len(c.buf))
			}
		}
	}
	big := make([]byte, 5000) // larger than ChunkBytes: a chunk of its own
	if err := ms.Append([]stores.Msg{{Seq: 10001, Time: 10001, Data: big}, {Seq: 10002, Time: 10002, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	var m stores.Msg
	if err := ms.Load(10001, &m); err != nil || len(m.Data) != 5000 {
		t.Fatalf("Load big = %d bytes, %v", len(m.Data), err)
	}
	if err := ms.Load(10002, &m); err != nil || string(m.Data) != "x" {
		t.Fatalf("Load after big = %q, %v", m.Data, err)
	}
}

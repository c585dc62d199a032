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
		if n := len(ms.q.live()); n > 25/10+2 {
			t.Fatalf("seq %d: %d chunks for 25 messages", seq, n)
		}
		for _, c := range ms.q.live() {
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

// TestChunkDirectory drives the chunk directory through its shapes with one message per
// chunk: growing from the heap to a mapping and doubling, sliding down as limits remove
// the oldest chunks, emptying by age, and growing again; every stored message stays
// loadable.
func TestChunkDirectory(t *testing.T) {
	s, _ := New(Options{ChunkMsgs: 1, Limits: &stores.LimitsSet{}})
	ch, _ := s.CreateChannel("foo", 1)
	ms := ch.Msgs.(*msgStore)
	next := uint64(1)
	add := func(n int) {
		for range n {
			if err := ms.Append([]stores.Msg{{Seq: next, Time: int64(next), Reply: "r", Data: []byte{byte(next)}}}); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	check := func() {
		t.Helper()
		st := ms.State()
		if got := uint64(len(ms.q.live())); got != st.Msgs {
			t.Fatalf("%d chunks for %d messages", got, st.Msgs)
		}
		var m stores.Msg
		for seq := st.First; seq <= st.Last; seq++ {
			if err := ms.Load(seq, &m); err != nil || m.Seq != seq || m.Time != int64(seq) || m.Reply != "r" || m.Data[0] != byte(seq) {
				t.Fatalf("Load(%d) = %+v, %v", seq, m, err)
			}
		}
		if st.Msgs > 0 && ms.SeqAtTime(int64(st.First+1)) != st.First+1 {
			t.Fatalf("SeqAtTime(%d) = %d", st.First+1, ms.SeqAtTime(int64(st.First+1)))
		}
	}
	add(3000) // heap directory, then mapped, doubling
	check()
	ms.SetLimits(stores.Limits{MaxMsgs: 700})
	for range 5 { // the head advances past half the directory: it slides down
		add(1000)
		check()
	}
	ms.SetLimits(stores.Limits{MaxAge: 1})
	if n, next := ms.Expire(int64(next) + 10); n != 700 || next != 0 {
		t.Fatalf("Expire = %d, %d; want 700, 0", n, next)
	}
	check()
	ms.SetLimits(stores.Limits{})
	add(2000)
	check()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ms.q.dir != nil || ms.q.spare.mem != nil {
		t.Fatal("Close kept chunks")
	}
}

// Load finds every message when chunks hold different numbers of messages: closed early by
// their bytes (large messages among small ones), the first grown from a page, the oldest
// partly removed by limits. locate's guess by division (chunks as full as the oldest) must
// fall back to the search whenever it is wrong.
func TestLoadAcrossUnevenChunks(t *testing.T) {
	s, _ := New(Options{ChunkMsgs: 8, ChunkBytes: 64, Limits: &stores.LimitsSet{}})
	ch, _ := s.CreateChannel("foo", 1)
	ms := ch.Msgs.(*msgStore)
	data := func(seq uint64) []byte {
		n := 1 + int(seq%5)
		if seq%13 == 0 {
			n = 40 // closes its chunk early
		}
		b := make([]byte, n)
		b[0] = byte(seq)
		return b
	}
	for seq := uint64(1); seq <= 500; seq++ {
		if err := ms.Append([]stores.Msg{{Seq: seq, Time: int64(seq), Data: data(seq)}}); err != nil {
			t.Fatal(err)
		}
		if seq == 300 {
			ms.SetLimits(stores.Limits{MaxMsgs: 250}) // the oldest chunk loses its head
		}
	}
	counts := map[int]bool{}
	for _, c := range ms.q.live() {
		counts[len(c.ents)] = true
	}
	if len(counts) < 2 {
		t.Fatalf("chunks all hold the same number of messages: %v", counts)
	}
	st := ms.State()
	var m stores.Msg
	for seq := st.First; seq <= st.Last; seq++ {
		want := data(seq)
		if err := ms.Load(seq, &m); err != nil || m.Seq != seq || len(m.Data) != len(want) || m.Data[0] != want[0] {
			t.Fatalf("Load(%d) = %+v, %v", seq, m, err)
		}
	}
}

// BenchmarkLoadSequential is a replay's read of a memory store: 1,000,000 messages of 128 B
// loaded in sequence order.
func BenchmarkLoadSequential(b *testing.B) {
	s, _ := New(Options{Limits: &stores.LimitsSet{}})
	ch, _ := s.CreateChannel("foo", 1)
	const n = 1_000_000
	batch := make([]stores.Msg, 1000)
	for seq := uint64(1); seq <= n; seq += uint64(len(batch)) {
		for i := range batch {
			batch[i] = stores.Msg{Seq: seq + uint64(i), Time: int64(seq) + int64(i), Data: make([]byte, 128)}
		}
		if err := ch.Msgs.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	m := stores.Msg{Data: make([]byte, 0, 128)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := ch.Msgs.Load(uint64(i%n)+1, &m); err != nil {
			b.Fatal(err)
		}
	}
}

package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/boltcheck"
	"github.com/starling-io/starling/stores"
)

// garbleN is the number of messages of channel foo in the garble tests; bar keeps its
// last garbleBarMax of as many (so its deletions leave free pages behind).
const (
	garbleN      = 400
	garbleBarMax = 50
)

func garblePayload(ch string, seq uint64) []byte {
	n := int(seq*37%700) + 1
	if seq%97 == 0 {
		n = 9000 // an overflow page
	}
	return bytes.Repeat([]byte(fmt.Sprintf("%s%d.", ch, seq)), n/4+1)[:n]
}

// writeGarbleDB builds two channels, committing batches of 10: foo keeps 1..garbleN, bar
// keeps its last garbleBarMax. The last commit holds foo's last batch.
func writeGarbleDB(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{NoSync: true, Limits: &stores.LimitsSet{Global: stores.Limits{},
		Channels: map[string]stores.Limits{"bar": {MaxMsgs: garbleBarMax}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	foo, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	bar, err := s.CreateChannel("bar", 2)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= garbleN; seq += 10 {
		for _, ch := range []*stores.Channel{bar, foo} {
			batch := make([]stores.Msg, 10)
			for i := range batch {
				q := seq + uint64(i)
				batch[i] = stores.Msg{Seq: q, Time: int64(q), Data: garblePayload(ch.Name, q)}
			}
			if err := ch.Msgs.Append(batch); err != nil {
				t.Fatal(err)
			}
			if err := ch.Msgs.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkGarbled requires foo to hold 1..k intact with k >= minFoo (k == garbleN when
// minFoo == garbleN) and bar its last messages intact.
func checkGarbled(t *testing.T, s *Store, minFoo uint64) {
	t.Helper()
	st, err := s.Recover()
	if err != nil || st == nil || len(st.Channels) != 2 {
		t.Fatalf("recover: %v %+v", err, st)
	}
	for _, rc := range st.Channels {
		ms := rc.Channel.Msgs
		got := ms.State()
		switch rc.Channel.Name {
		case "foo":
			if got.First != 1 || got.Last < minFoo || got.Last > garbleN {
				t.Fatalf("foo: state %+v, want 1..%d or more", got, minFoo)
			}
		case "bar":
			if got.Last < minFoo || got.Msgs != garbleBarMax || got.First != got.Last-garbleBarMax+1 {
				t.Fatalf("bar: state %+v", got)
			}
		}
		var m stores.Msg
		for q := got.First; q <= got.Last; q++ {
			if err := ms.Load(q, &m); err != nil || !bytes.Equal(m.Data, garblePayload(rc.Channel.Name, q)) {
				t.Fatalf("%s message %d: %d bytes, %v", rc.Channel.Name, q, len(m.Data), err)
			}
		}
	}
}

// appendMore appends and syncs 10 more messages to foo after its last, closes the store
// and reopens it: a store that opened must also write and reopen (its freelist is sound).
func appendMore(t *testing.T, s *Store, path string, minFoo uint64) {
	t.Helper()
	foo := s.channels["foo"].msgs
	last := foo.State().Last
	for q := last + 1; q <= last+10; q++ {
		if err := foo.Append([]stores.Msg{{Seq: q, Time: int64(q), Data: garblePayload("foo", q)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := foo.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopen after appending: %v", err)
	}
	defer s.Close()
	if got := s.channels["foo"].msgs.State(); got.Last != last+10 {
		t.Fatalf("after appending: foo %+v, want last %d", got, last+10)
	}
	var m stores.Msg
	for q := uint64(1); q <= last+10; q++ {
		if err := s.channels["foo"].msgs.Load(q, &m); err != nil || !bytes.Equal(m.Data, garblePayload("foo", q)) {
			t.Fatalf("after appending: foo %d: %v", q, err)
		}
	}
}

// exercise reads everything a damaged store that opened holds and writes to it: errors
// are allowed, a panic is not.
func exercise(t *testing.T, s *Store) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			// Not Close: the panic may have left a channel's lock held, and Close would wait
			// for it forever — the test binary then hangs until its timeout instead of failing.
			t.Errorf("panic on a garbled file: %v\n%s", r, debug.Stack())
			return
		}
		s.Close()
	}()
	st, err := s.Recover()
	if err != nil || st == nil {
		return
	}
	var m stores.Msg
	for _, rc := range st.Channels {
		ms := rc.Channel.Msgs
		got := ms.State()
		name := rc.Channel.Name
		for q := got.First; q <= got.Last && q-got.First < 10_000; q++ {
			// Refused or intact, never served damaged (records carry a checksum).
			err := ms.Load(q, &m)
			if err == nil && (name == "foo" || name == "bar") && !bytes.Equal(m.Data, garblePayload(name, q)) {
				t.Errorf("%s message %d: served damaged (%d bytes)", name, q, len(m.Data))
			}
		}
		_ = ms.Append([]stores.Msg{{Seq: got.Last + 1, Time: 1 << 40, Data: []byte("x")}})
		_ = ms.Sync()
	}
}

type garbler struct {
	name string
	f    func(rng *rand.Rand, page []byte)
}

var garblers = []garbler{
	{"zero", func(_ *rand.Rand, p []byte) { clear(p) }},
	{"ones", func(_ *rand.Rand, p []byte) {
		for i := range p {
			p[i] = 0xff
		}
	}},
	{"random", func(rng *rand.Rand, p []byte) {
		for i := range p {
			p[i] = byte(rng.IntN(256))
		}
	}},
	{"header", func(rng *rand.Rand, p []byte) {
		for i := range 16 {
			p[i] = byte(rng.IntN(256))
		}
	}},
	{"elements", func(rng *rand.Rand, p []byte) { // element table and first keys
		for i := 16; i < 160; i++ {
			p[i] = byte(rng.IntN(256))
		}
	}},
	{"byte", func(rng *rand.Rand, p []byte) { p[rng.IntN(len(p))] ^= byte(1 + rng.IntN(255)) }},
	{"bytes", func(rng *rand.Rand, p []byte) {
		for range 8 {
			p[rng.IntN(len(p))] ^= byte(1 + rng.IntN(255))
		}
	}},
	{"torn", func(rng *rand.Rand, p []byte) { clear(p[512*(1+rng.IntN(7)):]) }}, // a partial sector write
}

// A garbled bolt file never crashes the process. Garbling what a crash can garble — free
// pages (an uncommitted transaction's writes), pages past the high-water mark, the older
// meta page — keeps every committed message, and the store writes and reopens after.
// Garbling the newest meta page loses at most the last commit (the torn commit itself).
// Garbling any live page (root, freelist, the last page, random ones) opens with every
// message readable or fails Open with ErrCorrupt — and reading and writing what opened
// never panics, and a message it serves is intact.
func TestGarbledFileNeverCrashes(t *testing.T) {
	dir := t.TempDir()
	pristinePath := filepath.Join(dir, "pristine.db")
	writeGarbleDB(t, pristinePath)
	pristine, err := os.ReadFile(pristinePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := boltcheck.Inspect(pristine)
	if err != nil {
		t.Fatalf("pristine file: %v", err)
	}
	psz := c.PageSize
	filePages := len(pristine) / psz
	var free, live []int
	for id := 2; id < int(c.HWM); id++ {
		if !c.Live(uint64(id)) {
			free = append(free, id)
		} else {
			live = append(live, id)
		}
	}
	t.Logf("%d pages of %d B: hwm %d, %d live, %d free, freelist %#x, meta %d (txid %d)",
		filePages, psz, c.HWM, len(live), len(free), c.Freelist, c.MetaPage, c.TxID)
	if len(free) == 0 {
		t.Fatal("no free pages to garble: the fixture needs deletions")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	pick := func(ids []int, n int) []int {
		out := make([]int, 0, n)
		for range n {
			out = append(out, ids[rng.IntN(len(ids))])
		}
		return out
	}

	type target struct {
		what string
		page int
		keep uint64 // foo messages that must survive; 0: live damage (ErrCorrupt or all intact)
	}
	targets := []target{{"older meta", 1 - c.MetaPage, garbleN}, {"newest meta", c.MetaPage, garbleN - 10}}
	for _, id := range pick(free, 6) {
		targets = append(targets, target{"free page", id, garbleN})
	}
	for id := int(c.HWM); id < filePages; id++ {
		targets = append(targets, target{"past the high-water mark", id, garbleN})
	}
	targets = append(targets, target{"root", int(c.Root), 0}, target{"last page of the file", filePages - 1, 0},
		target{"last page below the high-water mark", int(c.HWM) - 1, 0})
	if c.Freelist != boltcheck.NoFreelist {
		targets = append(targets, target{"freelist", int(c.Freelist), 0})
	}
	for _, id := range pick(live, 10) {
		targets = append(targets, target{"live page", id, 0})
	}

	var opened, corrupt int
	n := 0
	for _, tg := range targets {
		for _, g := range garblers {
			n++
			name := fmt.Sprintf("%s %d/%s", tg.what, tg.page, g.name)
			data := bytes.Clone(pristine)
			g.f(rng, data[tg.page*psz:(tg.page+1)*psz])
			path := filepath.Join(dir, fmt.Sprintf("g%d.db", n))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{NoSync: true})
			if tg.keep > 0 {
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkGarbled(t, s, tg.keep)
				appendMore(t, s, path, tg.keep)
				continue
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: error %v does not wrap ErrCorrupt", name, err)
				}
				corrupt++
				continue
			}
			opened++
			exercise(t, s)
		}
	}
	t.Logf("live damage: %d opened (damage inside values or unused bytes), %d ErrCorrupt", opened, corrupt)

	// Truncations: loud unless only pages past the high-water mark went.
	for _, size := range []int{100, psz, psz + 100, 2 * psz, 3 * psz, int(c.HWM)*psz - psz, int(c.HWM)*psz - 1} {
		path := filepath.Join(dir, fmt.Sprintf("t%d.db", size))
		if err := os.WriteFile(path, pristine[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{NoSync: true})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", size, err)
		}
		if s != nil {
			s.Close()
		}
	}
	if int(c.HWM) < filePages {
		path := filepath.Join(dir, "thwm.db")
		if err := os.WriteFile(path, pristine[:int(c.HWM)*psz], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatalf("cut at the high-water mark: %v", err)
		}
		checkGarbled(t, s, garbleN)
		s.Close()
	}
}

// A file of zero bytes — a creation torn before bbolt's first fsync — opens as a new
// store.
func TestZeroFilledFileIsFresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	if err := os.WriteFile(path, make([]byte, 4*4096), 0o600); err != nil { // four pages of 4 KiB
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st, err := s.Recover(); err != nil || st != nil {
		t.Fatalf("Recover = %+v, %v", st, err)
	}
}

// A store whose file reads back all zeros — blocks the file system lost — is refused and
// left as it is. Taken for a torn creation, it was truncated and opened as a new store: the
// server initialised it and served no channel, every acknowledged message gone without a
// word.
func TestZeroedStoreRefused(t *testing.T) {
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	appendSync(t, ch.Msgs, 1, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, fi.Size()), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a zeroed store of %d bytes = %v, want ErrCorrupt", fi.Size(), err)
	}
	if fi2, err := os.Stat(path); err != nil || fi2.Size() != fi.Size() {
		t.Fatalf("the refused file changed: %v %v", fi2.Size(), err)
	}
}

// A file held open by another store (another process) is not checked while it may be
// written: the second Open reports bbolt's lock timeout, not corruption.
func TestOpenLockedFileIsNotChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := Open(path, Options{NoSync: true, LockTimeout: 50 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held file succeeded")
	}
	if errors.Is(err, ErrCorrupt) {
		t.Fatalf("second Open: %v", err)
	}
	// It says why: bbolt's own error is a bare "timeout".
	if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want the file named as in use", err)
	}
}

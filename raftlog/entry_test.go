package raftlog

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
)

func readAll(b []byte) ([][]byte, error) {
	r, err := readEntry(b)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for r.more() {
		d, err := r.next()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, r.end()
}

func TestEntryRoundTrip(t *testing.T) {
	for _, cs := range [][]Command{
		{{Data: []byte("one")}},
		{{Data: nil}, {Data: []byte{}}, {Data: bytes.Repeat([]byte("x"), 300)}, {Data: []byte("z")}},
	} {
		b := encodeEntry(cs)
		if cap(b) != len(b) {
			t.Errorf("encodeEntry sized %d for %d bytes", cap(b), len(b))
		}
		got, err := readAll(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(cs) {
			t.Fatalf("%d commands back, want %d", len(got), len(cs))
		}
		for i := range cs {
			if !bytes.Equal(got[i], cs[i].Data) {
				t.Errorf("command %d: %q, want %q", i, got[i], cs[i].Data)
			}
			if cap(got[i]) != len(got[i]) {
				t.Errorf("command %d is not capped: appending to it would overwrite the next", i)
			}
		}
	}
}

func TestEntryCorrupt(t *testing.T) {
	good := encodeEntry([]Command{{Data: []byte("abc")}, {Data: []byte("de")}})
	v1 := append([]byte{entryFormatV1}, good[1:len(good)-entryCRCLen]...) // the same, unchecked
	flipped := append([]byte(nil), good...)
	flipped[4] ^= 0x10
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty entry"},
		{"format", append([]byte{4}, good[1:]...), "entry format 4"},
		{"flipped bit", flipped, "the entry is corrupt"},
		{"no checksum", []byte{entryFormat, 1, 0}, "checksum: truncated"},
		{"no count", []byte{entryFormatV1}, "command count: truncated"},
		{"zero count", []byte{entryFormatV1, 0}, "command count 0"},
		{"huge count", []byte{entryFormatV1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1}, "command count"},
		{"length past the end", v1[:len(v1)-1], "command 2 of 2: length 2, only 1 bytes left"},
		{"missing length", v1[:6], "command 2 of 2: length: truncated"},
		{"trailing bytes", append(append([]byte(nil), v1...), 9), "1 bytes after the last of 2 commands"},
	} {
		_, err := readAll(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// Format 1 entries, written before the checksum, still read.
	if got, err := readAll(v1); err != nil || len(got) != 2 || string(got[1]) != "de" {
		t.Fatalf("a format 1 entry: %q %v", got, err)
	}
}

// FuzzReadEntry: no input panics, and what reads cleanly encodes back to the same bytes
// when its lengths are minimal.
func FuzzReadEntry(f *testing.F) {
	f.Add(encodeEntry([]Command{{Data: []byte("abc")}}))
	f.Add(encodeEntry([]Command{{Data: nil}, {Data: []byte("de")}}))
	f.Add([]byte{entryFormatV1, 0x80})
	f.Add(appendFragments(nil, []byte("a command in fragments"), fragHeaderMax+minFragment)[0].data)
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := readAll(b)
		if err != nil {
			return
		}
		cs := make([]Command, len(cmds))
		for i, d := range cmds {
			cs[i].Data = d
		}
		if again := encodeEntry(cs); len(again) > len(b)+entryCRCLen { // a format 1 entry gains the checksum
			t.Fatalf("re-encoded to %d bytes from %d", len(again), len(b))
		}
	})
}

func TestEntryEnds(t *testing.T) {
	cmd := func(n int) Command { return Command{Data: make([]byte, n)} }
	for _, tc := range []struct {
		sizes []int
		max   int
		want  []int
	}{
		{nil, 100, nil},
		{[]int{10, 10, 10}, 100, nil},
		{[]int{200}, 100, nil},                    // too large alone: still one entry
		{[]int{40, 40, 40}, 100, []int{2, 3}},     // 8 + 2×41 fits, a third does not
		{[]int{200, 10, 10}, 100, []int{1, 3}},    // the large one alone
		{[]int{10, 200, 10}, 100, []int{1, 2, 3}}, // ...wherever it is
		{[]int{90, 90, 90, 90}, 100, []int{1, 2, 3, 4}},
	} {
		cs := make([]Command, len(tc.sizes))
		for i, n := range tc.sizes {
			cs[i] = cmd(n)
		}
		if got := entryEnds(cs, tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("entryEnds(%v, %d) = %v, want %v", tc.sizes, tc.max, got, tc.want)
		}
		if ends := entryEnds(cs, tc.max); ends != nil {
			start := 0
			for _, end := range ends {
				if size := len(encodeEntry(cs[start:end])); size > tc.max && end-start > 1 {
					t.Errorf("%v: entry of commands %d..%d is %d bytes, over %d", tc.sizes, start, end, size, tc.max)
				}
				start = end
			}
		}
	}
}

// TestFragments: a command too large for an entry goes in fragments of at most the limit,
// which read back to its bytes; a fragment that cannot belong to a command is an error.
func TestFragments(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	const limit = 1000
	parts := appendFragments(nil, data, limit)
	var back []byte
	for i, p := range parts {
		if len(p.data) > limit {
			t.Errorf("fragment %d: %d bytes, over %d", i, len(p.data), limit)
		}
		if want := 0; i == len(parts)-1 {
			want = 1
			if p.n != want {
				t.Errorf("the last fragment completes %d commands, want 1", p.n)
			}
		} else if p.n != want {
			t.Errorf("fragment %d completes %d commands", i, p.n)
		}
		r, err := readEntry(p.data)
		if err != nil {
			t.Fatal(err)
		}
		if r.more() || r.end() != nil || r.total != uint64(len(data)) || r.offset != uint64(len(back)) {
			t.Fatalf("fragment %d: total %d, offset %d, commands %d", i, r.total, r.offset, r.n)
		}
		back = append(back, r.frag...)
	}
	if !bytes.Equal(back, data) || len(parts) != 11 {
		t.Fatalf("%d fragments read back to %d bytes, want 11 to %d", len(parts), len(back), len(data))
	}

	frag := func(body ...byte) []byte {
		b := append([]byte{entryFragment}, body...)
		return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"no total", frag(), "fragment total: truncated"},
		{"no offset", frag(5), "fragment offset: truncated"},
		{"no bytes", frag(5, 0), "fragment of 0 bytes at 0 of a command of 5"},
		{"offset past the end", frag(5, 5, 'x'), "fragment of 1 bytes at 5 of a command of 5"},
		{"bytes past the end", frag(5, 4, 'x', 'y'), "fragment of 2 bytes at 4 of a command of 5"},
		{"flipped bit", append(frag(5, 0, 'x')[:4], 0, 0, 0, 0), "the entry is corrupt"},
	} {
		if _, err := readEntry(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestSplitFragments: a proposal's commands too large for an entry go in fragments between
// the entries of the others; every part fits the limit and the parts count every command.
func TestSplitFragments(t *testing.T) {
	n := &Node{cfg: Config{MaxEntryBytes: 100}}
	cmd := func(size int) Command { return Command{Data: bytes.Repeat([]byte{'x'}, size)} }
	for _, tc := range []struct {
		sizes []int
		parts []int // commands each part completes
	}{
		{[]int{10, 10}, nil},
		{[]int{0}, nil},
		{[]int{200}, []int{0, 0, 1}},
		{[]int{10, 200, 10, 10}, []int{1, 0, 0, 1, 2}},
	} {
		cs := make([]Command, len(tc.sizes))
		for i, s := range tc.sizes {
			cs[i] = cmd(s)
		}
		parts := n.split(cs)
		var got []int
		for _, p := range parts {
			got = append(got, p.n)
			if len(p.data) > 100 {
				t.Errorf("%v: a part of %d bytes", tc.sizes, len(p.data))
			}
		}
		if !slices.Equal(got, tc.parts) {
			t.Errorf("%v: parts completing %v commands, want %v", tc.sizes, got, tc.parts)
		}
	}
}

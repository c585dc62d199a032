package raftlog

import (
	"bytes"
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
		{"format", append([]byte{3}, good[1:]...), "entry format 3"},
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

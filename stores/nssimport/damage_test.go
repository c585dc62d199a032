package nssimport

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recOffsets returns the offset of each record of a typed or untyped file (after the
// version header).
func recOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	f, size, err := openSized(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rr, err := newRecordReader(path, f, size, strings.HasSuffix(path, clientsFile) || strings.HasSuffix(path, subsFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	rr.table = crcIEEE()
	var offs []int64
	for {
		_, _, at, err := rr.next()
		if err != nil {
			return offs
		}
		offs = append(offs, at)
	}
}

func mutate(t *testing.T, path string, f func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, f(b))
}

// TestDamageIsRefused: every kind of damage fails Scan with a *FormatError naming the file
// and the offset of the record at fault.
func TestDamageIsRefused(t *testing.T) {
	cases := []struct {
		name   string
		file   string                                // relative to the store
		damage func(t *testing.T, path string) int64 // returns the offset expected in the error
		reason string
	}{
		{"flipped data byte", "orders/msgs.1.dat", func(t *testing.T, p string) int64 {
			at := recOffsets(t, p)[4]
			mutate(t, p, func(b []byte) []byte { b[at+headerSize+5] ^= 0x40; return b })
			return at
		}, "checksum mismatch"},
		{"flipped byte in the last record (index unusable too)", "orders/msgs.2.dat", func(t *testing.T, p string) int64 {
			offs := recOffsets(t, p)
			at := offs[len(offs)-1]
			mutate(t, p, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
			return at
		}, "checksum mismatch"},
		{"data file cut mid-record", "orders/msgs.2.dat", func(t *testing.T, p string) int64 {
			offs := recOffsets(t, p)
			at := offs[len(offs)-1]
			mutate(t, p, func(b []byte) []byte { return b[:at+headerSize+2] })
			return at
		}, "runs past the end of the file"},
		{"data file cut mid-header", "orders/msgs.2.dat", func(t *testing.T, p string) int64 {
			offs := recOffsets(t, p)
			at := offs[len(offs)-1]
			mutate(t, p, func(b []byte) []byte { return b[:at+3] })
			return at
		}, "record header cut short"},
		{"subs.dat cut mid-record", "orders/subs.dat", func(t *testing.T, p string) int64 {
			offs := recOffsets(t, p)
			at := offs[7]
			mutate(t, p, func(b []byte) []byte { return b[:at+headerSize+1] })
			return at
		}, "runs past the end of the file"},
		{"clients.dat flipped", "clients.dat", func(t *testing.T, p string) int64 {
			at := recOffsets(t, p)[1]
			mutate(t, p, func(b []byte) []byte { b[at+headerSize] ^= 0xff; return b })
			return at
		}, "checksum mismatch"},
		{"server.dat flipped", "server.dat", func(t *testing.T, p string) int64 {
			mutate(t, p, func(b []byte) []byte { b[20] ^= 0xff; return b })
			return versionSize
		}, "checksum mismatch"},
		{"server.dat with trailing bytes", "server.dat", func(t *testing.T, p string) int64 {
			var end int64
			mutate(t, p, func(b []byte) []byte { end = int64(len(b)); return append(b, 1, 2, 3) })
			return end
		}, "unexpected bytes after the server record"},
		{"bad version", "orders/msgs.1.dat", func(t *testing.T, p string) int64 {
			mutate(t, p, func(b []byte) []byte { b[0] = 9; return b })
			return 0
		}, "unsupported file version 9"},
		{"empty file", "events/subs.dat", func(t *testing.T, p string) int64 {
			writeFile(t, p, nil)
			return 0
		}, "no version header"},
		{"unknown subscription record", "orders/subs.dat", func(t *testing.T, p string) int64 {
			var end int64
			mutate(t, p, func(b []byte) []byte { end = int64(len(b)); return append(b, rec(9, encIDSeq(1, 1))...) })
			return end
		}, "unknown subscription record type 9"},
		{"payload that does not decode", "events/msgs.1.dat", func(t *testing.T, p string) int64 {
			var end int64
			mutate(t, p, func(b []byte) []byte { end = int64(len(b)); return append(b, rec(0, []byte{0x0a, 0x05, 'a'})...) })
			return end
		}, "message record does not decode"},
		{"gap between slices", "orders/msgs.2.dat", func(t *testing.T, p string) int64 {
			writeSlice(t, filepath.Dir(p), 2, msgRange("orders", 14, 30), true)
			return versionSize
		}, "messages 13 to 13 are missing"},
		{"sequence going back", "events/msgs.1.dat", func(t *testing.T, p string) int64 {
			msgs := append(msgRange("events", 5, 9), msgRange("events", 7, 7)...)
			offs := writeSlice(t, filepath.Dir(p), 1, msgs, false)
			return offs[5]
		}, "sequence 7 after 9"},
		{"zero header followed by data", "events/msgs.1.dat", func(t *testing.T, p string) int64 {
			var end int64
			mutate(t, p, func(b []byte) []byte {
				end = int64(len(b))
				return append(append(b, make([]byte, 20)...), 1)
			})
			return end
		}, "record header of zeros followed by data"},
		{"index and data disagree", "orders/msgs.1.dat", func(t *testing.T, p string) int64 {
			// A checksum-valid index entry with the wrong size: the index is used (its last
			// entry matches), and the record at that offset is not what it says.
			offs := recOffsets(t, p)
			idx := strings.TrimSuffix(p, datSuffix) + idxSuffix
			mutate(t, idx, func(b []byte) []byte {
				e := b[versionSize+3*idxEntrySize:][:idxEntrySize]
				e[24]++
				fixIdxCRC(e)
				return b
			})
			return offs[3]
		}, "where the index"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := sampleStore(t)
			path := filepath.Join(dir, c.file)
			at := c.damage(t, path)
			_, err := Scan(dir, Options{})
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrDamaged) {
				t.Fatalf("scan: %v, want a FormatError", err)
			}
			if fe.File != path || fe.Offset != at || !strings.Contains(fe.Reason, c.reason) {
				t.Fatalf("error %q, want %s at offset %d: %s", err, path, at, c.reason)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset ") {
				t.Fatalf("message %q does not name the file and offset", err)
			}
		})
	}
}

// TestTolerated: what nss itself recovers from imports, with a note.
func TestTolerated(t *testing.T) {
	t.Run("damaged index", func(t *testing.T) {
		dir := sampleStore(t)
		mutate(t, filepath.Join(dir, "orders", "msgs.1.idx"), func(b []byte) []byte { b[versionSize+idxEntrySize+3] ^= 1; return b })
		src, err := Scan(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ch := src.Channels[2]; ch.Msgs != 30 || ch.slices[0].useIndex || !ch.slices[1].useIndex {
			t.Fatalf("orders %+v", ch)
		}
		if len(src.Notes) != 1 || !strings.Contains(src.Notes[0], "index unusable") || !strings.Contains(src.Notes[0], "msgs.1.idx: offset 36") {
			t.Fatalf("notes %q", src.Notes)
		}
	})
	t.Run("index entries out of order", func(t *testing.T) {
		dir := sampleStore(t)
		mutate(t, filepath.Join(dir, "orders", "msgs.1.idx"), func(b []byte) []byte {
			e := b[versionSize+3*idxEntrySize:][:idxEntrySize]
			copy(e[8:16], b[versionSize+4*idxEntrySize+8:][:8])
			fixIdxCRC(e)
			return b
		})
		src, err := Scan(dir, Options{})
		if err != nil || src.Channels[2].slices[0].useIndex || len(src.Notes) != 1 || !strings.Contains(src.Notes[0], "does not follow") {
			t.Fatalf("%v %q", err, src.Notes)
		}
	})
	t.Run("index cut mid-entry", func(t *testing.T) {
		dir := sampleStore(t)
		mutate(t, filepath.Join(dir, "orders", "msgs.2.idx"), func(b []byte) []byte { return b[:len(b)-5] })
		src, err := Scan(dir, Options{})
		if err != nil || src.Channels[2].Msgs != 30 || len(src.Notes) != 1 {
			t.Fatalf("%v %q", err, src.Notes)
		}
	})
	t.Run("index missing its last entries", func(t *testing.T) {
		// Records written after the last indexed one (the index lost its tail in a
		// crash) are imported, with a note: nss may have delivered them.
		dir := sampleStore(t)
		mutate(t, filepath.Join(dir, "orders", "msgs.2.idx"), func(b []byte) []byte { return b[:len(b)-2*idxEntrySize] })
		src, err := Scan(dir, Options{})
		if err != nil || src.Channels[2].Last != 30 || len(src.Notes) != 1 || !strings.Contains(src.Notes[0], "2 message(s) past its last entry") {
			t.Fatalf("%v %+v %q", err, src.Channels[2], src.Notes)
		}
	})
	t.Run("index missing its last entries, then a torn record", func(t *testing.T) {
		dir := sampleStore(t)
		mutate(t, filepath.Join(dir, "orders", "msgs.2.idx"), func(b []byte) []byte { return b[:len(b)-2*idxEntrySize] })
		mutate(t, filepath.Join(dir, "orders", "msgs.2.dat"), func(b []byte) []byte { return append(b, 9, 0, 0, 0, 1, 2) })
		src, err := Scan(dir, Options{})
		if err != nil || src.Channels[2].Last != 30 || len(src.Notes) != 2 || !strings.Contains(src.Notes[0], "past its index left out") {
			t.Fatalf("%v %+v %q", err, src.Channels[2], src.Notes)
		}
	})
	t.Run("records past the index written again in the next slice", func(t *testing.T) {
		// nss ignored 4-5 past msgs.1.idx and went on in msgs.2 from 4: those are stale.
		dir := sampleStore(t)
		chDir := filepath.Join(dir, "events")
		for _, f := range []string{"msgs.1.dat", "msgs.1.idx"} {
			_ = os.Remove(filepath.Join(chDir, f))
		}
		writeSlice(t, chDir, 1, msgRange("events", 1, 5), true)
		mutate(t, filepath.Join(chDir, "msgs.1.idx"), func(b []byte) []byte { return b[:len(b)-2*idxEntrySize] })
		writeSlice(t, chDir, 2, msgRange("events", 4, 8), true)
		src, err := Scan(dir, Options{})
		if err != nil || src.Channels[1].First != 1 || src.Channels[1].Last != 8 || src.Channels[1].Msgs != 8 ||
			!strings.Contains(strings.Join(src.Notes, "\n"), "sequence 4 is in the next slice") {
			t.Fatalf("%v %+v %q", err, src.Channels[1], src.Notes)
		}
		if err := Import(src, filepath.Join(t.TempDir(), "new"), openFile, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("zero padding", func(t *testing.T) {
		dir := sampleStore(t)
		mutate(t, filepath.Join(dir, "events", "msgs.1.dat"), func(b []byte) []byte { return append(b, make([]byte, 100)...) })
		mutate(t, filepath.Join(dir, "orders", "subs.dat"), func(b []byte) []byte { return append(b, make([]byte, 8)...) })
		src, err := Scan(dir, Options{})
		if err != nil || src.Channels[1].Msgs != 5 || len(src.Notes) != 2 || !strings.Contains(src.Notes[0], "zero padding") {
			t.Fatalf("%v %q", err, src.Notes)
		}
	})
	t.Run("times going back", func(t *testing.T) {
		dir := sampleStore(t)
		msgs := msgRange("events", 5, 9)
		msgs[2].Time = msgs[0].Time - 1
		writeSlice(t, filepath.Join(dir, "events"), 1, msgs, true)
		src, err := Scan(dir, Options{})
		if err != nil || len(src.Notes) != 1 || !strings.Contains(src.Notes[0], "1 message time(s) earlier") {
			t.Fatalf("%v %q", err, src.Notes)
		}
	})
	t.Run("encrypted payloads", func(t *testing.T) {
		dir := sampleStore(t)
		msgs := msgRange("events", 5, 9)
		for i := range msgs {
			msgs[i].Data = append([]byte{1}, make([]byte, 12+16+i)...)
		}
		writeSlice(t, filepath.Join(dir, "events"), 1, msgs, true)
		src, err := Scan(dir, Options{})
		if err != nil || len(src.Notes) != 1 || !strings.Contains(src.Notes[0], "looks encrypted") {
			t.Fatalf("%v %q", err, src.Notes)
		}
	})
	t.Run("pending outside the channel", func(t *testing.T) {
		dir := sampleStore(t)
		mutate(t, filepath.Join(dir, "events", subsFile), func(b []byte) []byte {
			return append(b, append(rec(recSubMsg, encIDSeq(1, 2)), rec(recSubMsg, encIDSeq(1, 40))...)...)
		})
		src, err := Scan(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := src.Channels[1].Subs[0]
		if len(s.Pending) != 0 || s.State.LastSent != 9 || len(src.Notes) != 2 {
			t.Fatalf("%+v %q", s, src.Notes)
		}
	})
}

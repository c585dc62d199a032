package nssimport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecords: any bytes, read as a typed or untyped nss file and as an index, with every
// payload decoded as every record kind, never panic, never allocate more than the input
// holds, and either end or fail with a *FormatError.
func FuzzRecords(f *testing.F) {
	dir := sampleStore(f)
	for _, p := range []string{serverFile, clientsFile, "orders/subs.dat", "orders/msgs.1.dat", "orders/msgs.1.idx", "events/msgs.1.dat"} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, p == clientsFile || p == "orders/subs.dat")
	}
	f.Add(versioned(make([]byte, 16)), false)
	f.Fuzz(func(t *testing.T, data []byte, typed bool) {
		rr, err := newRecordReader("f", bytes.NewReader(data), int64(len(data)), typed, crcIEEE())
		if err != nil {
			checkErr(t, err)
		} else {
			for i := 0; ; i++ {
				_, payload, at, err := rr.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					checkErr(t, err)
					break
				}
				if at < versionSize || at+headerSize+int64(len(payload)) > int64(len(data)) {
					t.Fatalf("record %d at %d of %d bytes outside the input (%d bytes)", i, at, len(payload), len(data))
				}
				var m nssMsg
				_ = decodeMsg(payload, &m)
				_, _ = decodeSub(payload)
				_, _, _ = decodeIDSeq(payload)
				_, _ = decodeClient(payload)
				_, _ = decodeClientDelete(payload)
				_, _ = decodeServerInfo(payload)
			}
		}
		ir, err := newIndexReader("f", bytes.NewReader(data), int64(len(data)), crcIEEE())
		if err != nil {
			checkErr(t, err)
			return
		}
		for {
			if _, err := ir.next(); err != nil {
				if err != io.EOF {
					checkErr(t, err)
				}
				return
			}
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a FormatError", err, err)
	}
}

// FuzzStore: one file of a valid store replaced by arbitrary bytes; Scan never panics,
// and when it accepts the store, Import writes exactly what it scanned.
func FuzzStore(f *testing.F) {
	files := []string{serverFile, clientsFile, "orders/subs.dat", "orders/msgs.1.dat", "orders/msgs.1.idx", "events/msgs.1.dat"}
	seed := sampleStore(f)
	for i, p := range files {
		b, err := os.ReadFile(filepath.Join(seed, p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
		if len(b) > 12 {
			f.Add(uint8(i), b[:len(b)-3])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		dir := sampleStore(t)
		writeFile(t, filepath.Join(dir, files[int(which)%len(files)]), data)
		src, err := Scan(dir, Options{})
		if err != nil {
			return
		}
		target := filepath.Join(t.TempDir(), "new")
		if err := Import(src, target, openFile, nil); err != nil {
			t.Fatalf("scanned, then import failed: %v", err)
		}
		st, err := openFile(target)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rs, err := st.Recover()
		if err != nil {
			t.Fatal(err)
		}
		for i, rc := range rs.Channels {
			if s := rc.Channel.Msgs.State(); s.Msgs != src.Channels[i].Msgs || s.Last != src.Channels[i].Last {
				t.Fatalf("channel %s: %+v, scanned %+v", rc.Channel.Name, s, src.Channels[i])
			}
		}
	})
}

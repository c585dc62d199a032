package app

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/stores/filestore"
)

func parseWith(t *testing.T, conf string, args ...string) (*Main, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	return m, m.ParseFlags(append([]string{"-c", path}, args...))
}

// Every file_options key of nats-streaming-server: mapped, or accepted and logged as not
// used, or (slice_archive_script) refused at its file:line:col.
func TestFileOptionsMapping(t *testing.T) {
	const conf = `streaming {
  store: file
  file_options {
    sync_on_flush: false
    auto_sync: "1s"
    slice_max_msgs: 1000
    slice_max_bytes: 16MB
    slice_max_age: "1h"
    fds_limit: 64
    parallel_recovery: 2
    buffer_size: 2MB
    crc: false
    crc_poly: 3988292384
    read_buffer_size: 2MB
    compact: true
    compact_fragmentation: 50
    compact_interval: 300
    compact_min_size: 1MB
  }
}
`
	m, err := parseWith(t, conf)
	if err != nil {
		t.Fatal(err)
	}
	st := &m.cfg.streaming
	got := st.file.fileStoreOptions()
	want := filestore.Options{NoSync: true, AutoSync: time.Second, SegmentMsgs: 1000, SegmentBytes: 16 << 20,
		SegmentAge: time.Hour, MaxOpenSegments: 64, ParallelRecovery: 2, BufferSize: 2 << 20}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("file store options\n got %+v\nwant %+v", got, want)
	}
	warnings := strings.Join(st.warnings, "\n")
	for _, w := range []string{
		"12:5: streaming.file_options.crc is not used: every record is CRC-checked",
		"13:5: streaming.file_options.crc_poly is not used",
		"14:5: streaming.file_options.read_buffer_size is not used",
		"15:5: streaming.file_options.compact is not used",
		"16:5: streaming.file_options.compact_fragmentation is not used",
		"17:5: streaming.file_options.compact_interval is not used",
		"18:5: streaming.file_options.compact_min_size is not used",
	} {
		if !strings.Contains(warnings, w) {
			t.Errorf("no warning %q in\n%s", w, warnings)
		}
	}

	// Flags win over the file.
	m, err = parseWith(t, conf, "--file_auto_sync", "250ms", "--file_slice_max_msgs", "7", "--file_sync", "--file_fds_limit", "9")
	if err != nil {
		t.Fatal(err)
	}
	fo := m.cfg.streaming.file
	if fo.autoSync != 250*time.Millisecond || fo.sliceMaxMsgs != 7 || !fo.sync || fo.fdsLimit != 9 || fo.sliceMaxBytes != 16<<20 {
		t.Fatalf("flags over file: %+v", fo)
	}

	// Defaults: nats-streaming-server's (sync on, auto_sync 1m, 64MB slices).
	m, err = parseWith(t, "streaming { store: file }\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.cfg.streaming.file.fileStoreOptions(); !reflect.DeepEqual(got, filestore.Options{AutoSync: time.Minute, SegmentBytes: 64 << 20}) {
		t.Fatalf("defaults %+v", got)
	}

	// A negative auto_sync disables it, as in nats-streaming-server.
	m, err = parseWith(t, "streaming { file_options { auto_sync: \"-1s\" } }\n")
	if err != nil || m.cfg.streaming.file.autoSync != 0 {
		t.Fatalf("negative auto_sync: %v %v", m.cfg.streaming.file.autoSync, err)
	}

	// File-store-only keys under another store are noted.
	m, err = parseWith(t, "streaming {\n  store: bolt\n  file_options { slice_max_msgs: 5, auto_sync: 2s }\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(m.cfg.streaming.warnings, "\n"); !strings.Contains(w, "3:18: streaming.file_options.slice_max_msgs is not used by the bolt store") ||
		strings.Contains(w, "auto_sync") {
		t.Fatalf("bolt warnings:\n%s", w)
	}
}

func TestFileOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		conf string
		args []string
		want []string
	}{
		{"streaming {\n  file_options {\n    slice_archive_script: \"/bin/archive.sh\"\n  }\n}\n", nil,
			[]string{"3:5: streaming.file_options.slice_archive_script: is not supported: segments removed by limits are deleted, not archived"}},
		{"streaming { file_options { slice_max_bytes: 2GB, parallel_recovery: -1, fds_limit: x, bogus: 1 } }\n", nil,
			[]string{"1:28: streaming.file_options.slice_max_bytes: size 2147483648 is out of range (0..1073741824)",
				"1:50: streaming.file_options.parallel_recovery: -1 is out of range",
				"1:73: streaming.file_options.fds_limit: expected an integer",
				"1:87: streaming.file_options.bogus: unknown configuration key"}},
		{"streaming { }\n", []string{"--file_slice_max_bytes", "2GB"},
			[]string{"flag --file_slice_max_bytes: out of range"}},
	} {
		_, err := parseWith(t, tc.conf, tc.args...)
		if err == nil {
			t.Fatalf("%q %q: no error", tc.conf, tc.args)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error\n%v\nlacks %q", err, w)
			}
		}
	}
}

// The help of --file_sync says what turning it off risks, bolt's whole file included
// (audit: the help promised only lost messages).
func TestFileSyncHelpNamesBoltRisk(t *testing.T) {
	var out bytes.Buffer
	m := NewMain(&out, &bytes.Buffer{})
	_ = m.ParseFlags([]string{"--help"})
	help := out.String()
	var line string
lines:
	for _, l := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "--file_sync "):
			line = l
		case line != "" && strings.HasPrefix(l, strings.Repeat(" ", helpColumn)): // continued
			line += l
		case line != "":
			break lines
		}
	}
	if line == "" {
		t.Fatalf("no --file_sync in the help:\n%s", help)
	}
	line = strings.Join(strings.Fields(line), " ") // unwrapped
	for _, want := range []string{"power loss", "bolt", "whole file unreadable"} {
		if !strings.Contains(line, want) {
			t.Errorf("-file_sync help does not say %q: %s", want, line)
		}
	}
}

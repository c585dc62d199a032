package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
)

func TestStoreVerifyAndRepair(t *testing.T) {
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	ch, err := st.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: 1, Data: []byte("a")}, {Seq: 2, Time: 2, Data: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), append([]string{"store"}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := run("verify", dir); code != 0 || !strings.Contains(out, "channel foo") {
		t.Fatalf("verify healthy: %d\n%s", code, out)
	}
	// Tear the tail of the segment: verify reports it, repair fixes it.
	segs, _ := filepath.Glob(filepath.Join(dir, "*", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0x07, 0x00, 0x00})
	f.Close()
	if code, out := run("verify", dir); code != 1 || !strings.Contains(out, "problem:") {
		t.Fatalf("verify torn: %d\n%s", code, out)
	}
	if code, out := run("repair", dir); code != 0 {
		t.Fatalf("repair torn: %d\n%s", code, out)
	}
	if code, out := run("verify", dir); code != 0 {
		t.Fatalf("verify after repair: %d\n%s", code, out)
	}
	if code, _ := run("bogus", dir); code != 2 {
		t.Fatalf("unknown verb: %d", code)
	}
}

func TestFileOptionsSync(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.conf")
	if err := os.WriteFile(path, []byte("streaming { store: file, dir: \""+dir+"\", file_options { sync: false } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-c", path}); err != nil {
		t.Fatal(err)
	}
	if m.cfg.streaming.file.sync {
		t.Fatal("file_options.sync: false was not applied")
	}
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-c", path, "--file_sync=true"}); err != nil {
		t.Fatal(err)
	}
	if !m.cfg.streaming.file.sync {
		t.Fatal("the flag did not win over the file")
	}
}

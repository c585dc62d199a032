package app

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/starling-io/starling/boltcheck"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
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
	if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: 1, Data: []byte("first-message")}, {Seq: 2, Time: 2, Data: []byte("second-message")}}); err != nil {
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
	// "subs.log records", not "subs": they count records (a durable is several), not subscriptions.
	if code, out := run("verify", dir); code != 0 || !strings.Contains(out, "channel foo") || !strings.Contains(out, "segments 1 subs.log records 0") {
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

// verify and repair on a bolt store's directory check its file read-only, as the server's
// open does (they used to fail on the file store's missing meta.log): a healthy store is
// listed, a damaged one named, and repair changes nothing.
func TestStoreVerifyBolt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "starling.db")
	st, err := boltstore.Open(path, boltstore.Options{NoSync: true})
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
	if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: 1, Data: []byte("first-message")}, {Seq: 2, Time: 2, Data: []byte("second-message")}}); err != nil {
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
	for _, verb := range []string{"verify", "repair"} {
		if code, out := run(verb, dir); code != 0 || !strings.Contains(out, "channel foo") || !strings.Contains(out, "last 2 msgs 2") {
			t.Fatalf("%s healthy: %d\n%s", verb, code, out)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A bit flipped inside a stored message: the channel is DAMAGED, the message named.
	flipped := bytes.Clone(data)
	flipped[bytes.Index(flipped, []byte("second-message"))] ^= 1
	if err := os.WriteFile(path, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run("verify", dir); code != 1 || !strings.Contains(out, "channel foo                            DAMAGED") ||
		!strings.Contains(out, "problem:") || !strings.Contains(out, "checksum") {
		t.Fatalf("verify of a flipped message: %d\n%s", code, out)
	}
	// An invalid meta page: a warning naming the file and the page, not a failure.
	r, err := boltcheck.Inspect(data)
	if err != nil {
		t.Fatal(err)
	}
	badMeta := bytes.Clone(data)
	badMeta[(1-r.MetaPage)*r.PageSize+16+60] ^= 1
	if err := os.WriteFile(path, badMeta, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run("verify", dir); code != 0 || !strings.Contains(out, "warning: "+path+": meta page") ||
		!strings.Contains(out, "1 warning(s)") {
		t.Fatalf("verify of an invalid meta page: %d\n%s", code, out)
	}
	if err := os.WriteFile(path, make([]byte, len(data)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run("verify", dir); code != 1 || !strings.Contains(out, "problem:") || !strings.Contains(out, path) {
		t.Fatalf("verify zeroed: %d\n%s", code, out)
	}
	if code, out := run("repair", dir); code != 1 || !strings.Contains(out, "does not change a bolt store") {
		t.Fatalf("repair zeroed: %d\n%s", code, out)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("the damaged file changed (%v)", err)
	}
}

// Damage inside a sealed segment: repair refuses, and tells the user the command that
// moves the damaged segments aside (not the Go option behind it).
func TestStoreRepairRefusalNamesQuarantine(t *testing.T) {
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{NoSync: true, SegmentMsgs: 2})
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
	for seq := uint64(1); seq <= 5; seq++ {
		if err := ch.Msgs.Append([]stores.Msg{{Seq: seq, Time: int64(seq), Data: []byte("payload")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*", "*.seg"))
	if len(segs) < 2 {
		t.Fatalf("segments: %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 2; i < len(b)/2+4; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), []string{"store", "repair", dir}, &out, &errOut)
	text := out.String() + errOut.String()
	if code != 1 || !strings.Contains(text, "starling store repair --quarantine "+dir) {
		t.Fatalf("repair of a damaged sealed segment: exit %d, want 1 and the --quarantine command:\n%s", code, text)
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

// writeNSSStore writes a minimal nats-streaming-server file store: server.dat and channel
// "foo" with n messages (no index file, no subscription). It returns the data file.
func writeNSSStore(t *testing.T, dir string, n int) string {
	t.Helper()
	frame := func(payload []byte) []byte {
		h := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
		h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(payload))
		return append(h, payload...)
	}
	version := []byte{1, 0, 0, 0}
	info := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "nss-cluster")
	if err := os.WriteFile(filepath.Join(dir, "server.dat"), append(version, frame(info)...), 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := append([]byte(nil), version...)
	for i := 1; i <= n; i++ {
		m := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(i))
		m = protowire.AppendString(protowire.AppendTag(m, 4, protowire.BytesType), fmt.Sprintf("message %d", i))
		m = protowire.AppendVarint(protowire.AppendTag(m, 5, protowire.VarintType), uint64(1000+i))
		msgs = append(msgs, frame(m)...)
	}
	dat := filepath.Join(dir, "foo", "msgs.1.dat")
	if err := os.MkdirAll(filepath.Dir(dat), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dat, msgs, 0o644); err != nil {
		t.Fatal(err)
	}
	return dat
}

func TestStoreImport(t *testing.T) {
	nss := t.TempDir()
	dat := writeNSSStore(t, nss, 3)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), append([]string{"store", "import"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	target := filepath.Join(t.TempDir(), "new")

	code, out, errs := run("--from-nss", nss, "--dir", target, "--dry-run")
	if code != 0 || !strings.Contains(out, "channel foo: 3 message(s), first 1 last 3") || !strings.Contains(out, "dry run: nothing written") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("dry run created the target: %v", err)
	}

	for _, st := range []string{"file", "bolt"} {
		dir := target + "-" + st
		if code, out, errs := run("--from-nss", nss, "--dir", dir, "--store", st); code != 0 || !strings.Contains(out, "imported into") {
			t.Fatalf("import %s: %d\n%s%s", st, code, out, errs)
		}
		var s stores.Store
		var err error
		if st == "file" {
			s, err = filestore.Open(dir, filestore.Options{})
		} else {
			s, err = boltstore.Open(filepath.Join(dir, "starling.db"), boltstore.Options{})
		}
		if err != nil {
			t.Fatal(err)
		}
		rs, err := s.Recover()
		if err != nil || rs.Info.ClusterID != "nss-cluster" || len(rs.Channels) != 1 || rs.Channels[0].Channel.Msgs.State().Msgs != 3 {
			t.Fatalf("%s store: %+v %v", st, rs, err)
		}
		var m stores.Msg
		if err := rs.Channels[0].Channel.Msgs.Load(2, &m); err != nil || string(m.Data) != "message 2" || m.Time != 1002 {
			t.Fatalf("%s message 2: %+v %v", st, m, err)
		}
		s.Close()
	}
	if code, _, errs := run("--from-nss", nss, "--dir", target+"-file"); code != 1 || !strings.Contains(errs, "not empty") {
		t.Fatalf("import over an existing store: %d %s", code, errs)
	}

	// A flipped byte: refused, naming the file and the offset, nothing written.
	b, _ := os.ReadFile(dat)
	b[len(b)-3] ^= 0x20
	if err := os.WriteFile(dat, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = run("--from-nss", nss, "--dir", target)
	if code != 1 || !strings.Contains(errs, dat+": offset ") || !strings.Contains(errs, "checksum mismatch") || !strings.Contains(errs, "nothing was written") {
		t.Fatalf("damaged: %d\n%s", code, errs)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("damaged import created the target: %v", err)
	}

	for _, args := range [][]string{{}, {"--dir", target}, {"--from-nss", nss}, {"--from-nss", nss, "--dir", target, "--store", "memory"},
		{"--from-nss", nss, "--dir", target, "--file_crc_poly", "x"}, {"--from-nss", nss, "--dir", target, "extra"}} {
		if code, _, _ := run(args...); code != 2 {
			t.Fatalf("usage %v: exit %d", args, code)
		}
	}
}

// TestStoreVerifyNamesAnImportLeftover: the hidden temporary directory an interrupted import
// leaves in the store directory (the marker removed by hand) is named by verify and repair,
// which pass all the same (it is no part of the store) and leave it. Before, they said
// nothing of a directory that may hold the whole imported store.
func TestStoreVerifyNamesAnImportLeftover(t *testing.T) {
	for _, kind := range []string{"file", "bolt"} {
		dir := t.TempDir()
		var st stores.Store
		var err error
		if kind == "bolt" {
			st, err = boltstore.Open(filepath.Join(dir, "starling.db"), boltstore.Options{NoSync: true})
		} else {
			st, err = filestore.Open(dir, filestore.Options{NoSync: true})
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		left := filepath.Join(dir, "."+filepath.Base(dir)+".import-42")
		if err := os.MkdirAll(filepath.Join(left, "ch00000001"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, verb := range []string{"verify", "repair"} {
			var out, errOut bytes.Buffer
			code := Execute(context.Background(), []string{"store", verb, dir}, &out, &errOut)
			if code != 0 || !strings.Contains(out.String(), "warning: "+left+": the temporary directory of an interrupted import") {
				t.Errorf("%s store %s: exit %d, want 0 and the leftover named:\n%s%s", kind, verb, code, out.String(), errOut.String())
			}
		}
		if _, err := os.Stat(filepath.Join(left, "ch00000001")); err != nil {
			t.Errorf("%s: the leftover was touched: %v", kind, err)
		}
	}
}

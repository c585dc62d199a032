package nssimport

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
	"github.com/starling-io/starling/stores/filestore"
)

func openFile(dir string) (stores.Store, error) {
	return filestore.Open(dir, filestore.Options{Limits: &stores.LimitsSet{}, NoSync: true})
}

func openBolt(dir string) (stores.Store, error) {
	return boltstore.Open(filepath.Join(dir, "starling.db"), boltstore.Options{Limits: &stores.LimitsSet{}, NoSync: true})
}

func TestScanSample(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.Info.ClusterID != "test-cluster" || src.Info.Publish != "_STAN.pub.abc" || src.AcksSubs != "_STAN.subacks.abc" {
		t.Fatalf("info %+v", src.Info)
	}
	var ids []string
	for _, c := range src.Clients {
		ids = append(ids, c.ID)
	}
	if !reflect.DeepEqual(ids, []string{"alice", "bob"}) {
		t.Fatalf("clients %v", ids)
	}
	if got := src.Clients[0]; got.PingMaxOut != 88 || string(got.ConnID) != "c1" || got.Protocol != 1 || got.PingInterval != 5 {
		t.Fatalf("client alice %+v", got)
	}
	if len(src.Channels) != 3 {
		t.Fatalf("channels %d", len(src.Channels))
	}
	empty, ev, orders := src.Channels[0], src.Channels[1], src.Channels[2]
	if ev.Name != "events" || ev.First != 5 || ev.Last != 9 || ev.Msgs != 5 {
		t.Fatalf("events %+v", ev)
	}
	if empty.Name != "empty" || empty.Msgs != 0 || empty.First != 1 || empty.Last != 0 {
		t.Fatalf("empty %+v", empty)
	}
	if orders.Name != "orders" || orders.First != 1 || orders.Last != 30 || orders.Msgs != 30 || len(orders.slices) != 2 ||
		!orders.slices[0].useIndex || !orders.slices[1].useIndex {
		t.Fatalf("orders %+v", orders)
	}
	want := []stores.RecoveredSub{
		{State: stores.SubState{ID: 1, ClientID: "alice", Inbox: "_INBOX.a", AckInbox: "_INBOX.ack1", DurableName: "dur", MaxInFlight: 10,
			AckWaitSecs: 30, LastSent: 4, IsDurable: true}, Pending: []uint64{2, 4}},
		{State: stores.SubState{ID: 2, ClientID: "carol", Inbox: "_INBOX.c", AckInbox: "_INBOX.ack2", DurableName: "closed", MaxInFlight: 1,
			AckWaitSecs: 5, LastSent: 20, IsDurable: true, IsClosed: true}, Pending: []uint64{20}},
		{State: stores.SubState{ID: 4, QGroup: "workers", DurableName: "qd", Inbox: "_INBOX.q", AckInbox: "_INBOX.ack4", MaxInFlight: 3,
			AckWaitSecs: 30, LastSent: 7, IsDurable: true}, Pending: []uint64{7}},
	}
	if !reflect.DeepEqual(orders.Subs, want) {
		t.Fatalf("orders subs\n got %+v\nwant %+v", orders.Subs, want)
	}
	if len(src.Notes) != 0 {
		t.Fatalf("notes %q", src.Notes)
	}
	var out bytes.Buffer
	src.WriteSummary(&out)
	for _, s := range []string{
		`cluster ID "test-cluster": 3 channel(s), 35 message(s), 2 client(s)`,
		"channel orders: 30 message(s), first 1 last 30",
		`subscription 1: durable "dur", client alice, last sent 4, 2 pending (2, 4)`,
		`subscription 2: durable "closed", client carol, offline, last sent 20, 1 pending (20)`,
		`subscription 4: durable queue "qd" group "workers", no client, last sent 7, 1 pending (7)`,
		"channel empty: 0 message(s), no message",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("summary lacks %q:\n%s", s, out.String())
		}
	}
}

// TestImport writes the sample into each durable store and reads it back as Starling
// would on start.
func TestImport(t *testing.T) {
	for name, open := range map[string]OpenFunc{"file": openFile, "bolt": openBolt} {
		t.Run(name, func(t *testing.T) {
			nss := sampleStore(t)
			src, err := Scan(nss, Options{User: "app"})
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "new")
			var progress bytes.Buffer
			if err := Import(src, target, open, &progress); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(progress.String(), "imported channel orders: 30 message(s), 3 subscription(s)") {
				t.Fatalf("progress:\n%s", progress.String())
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".new.import-*"))
			if len(leftovers) != 0 {
				t.Fatalf("temporary directories left: %v", leftovers)
			}
			st, err := open(target)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.SetLimits(&stores.LimitsSet{}); err != nil {
				t.Fatal(err)
			}
			rs, err := st.Recover()
			if err != nil || rs == nil {
				t.Fatalf("recover: %v %v", rs, err)
			}
			if !rs.Clean || rs.Info.ClusterID != "test-cluster" || len(rs.Info.NodeID) != 22 || rs.Info.Publish != "_STAN.pub.abc" {
				t.Fatalf("state: clean %v info %+v", rs.Clean, rs.Info)
			}
			if len(rs.Clients) != 2 || rs.Clients[0].ID != "alice" || rs.Clients[0].User != "app" || string(rs.Clients[0].ConnID) != "c1" {
				t.Fatalf("clients %+v", rs.Clients)
			}
			if len(rs.Channels) != 3 {
				t.Fatalf("channels %d", len(rs.Channels))
			}
			for i, rc := range rs.Channels {
				ch := src.Channels[i]
				if rc.Channel.Name != ch.Name || rc.Channel.ID != uint64(i+1) {
					t.Fatalf("channel %d: %s id %d", i, rc.Channel.Name, rc.Channel.ID)
				}
				state := rc.Channel.Msgs.State()
				if state.First != ch.First || state.Last != ch.Last || state.Msgs != ch.Msgs {
					t.Fatalf("%s: state %+v", ch.Name, state)
				}
				var m stores.Msg
				for _, want := range msgRange(ch.Name, ch.First, ch.Last) {
					if err := rc.Channel.Msgs.Load(want.Seq, &m); err != nil {
						t.Fatalf("%s: load %d: %v", ch.Name, want.Seq, err)
					}
					if m.Time != want.Time || !bytes.Equal(m.Data, want.Data) || m.Reply != string(want.Reply) {
						t.Fatalf("%s: message %d: %+v, want %+v", ch.Name, want.Seq, m, want)
					}
				}
				subs := rc.Subs
				if len(subs) != len(ch.Subs) {
					t.Fatalf("%s: subs %+v", ch.Name, subs)
				}
				for j := range subs {
					want := ch.Subs[j]
					want.State.User = "app"
					if !reflect.DeepEqual(subs[j].State, want.State) || !reflect.DeepEqual(subs[j].Pending, want.Pending) {
						t.Fatalf("%s: sub %+v, want %+v", ch.Name, subs[j], want)
					}
				}
			}
		})
	}
}

func TestImportRefusesExistingTarget(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	writeFile(t, filepath.Join(target, "keep"), []byte("x"))
	if err := Import(src, target, openFile, nil); !errors.Is(err, ErrTargetExists) {
		t.Fatalf("import over a non-empty directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "keep")); err != nil || string(b) != "x" {
		t.Fatalf("target changed: %q %v", b, err)
	}
	// An empty directory is replaced.
	empty := t.TempDir()
	if err := Import(src, empty, openFile, nil); err != nil {
		t.Fatalf("import into an empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "meta.log")); err != nil {
		t.Fatal(err)
	}
}

// An import killed into an empty directory (a mount point) leaves its hidden temporary
// directory there: the next import names it, as the target looks empty to ls. It said only
// "exists and is not empty".
func TestImportNamesAnInterruptedImport(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	left := filepath.Join(target, "."+filepath.Base(target)+".import-123")
	if err := os.Mkdir(left, 0o755); err != nil {
		t.Fatal(err)
	}
	err = Import(src, target, openFile, nil)
	if !errors.Is(err, ErrTargetExists) || !strings.Contains(err.Error(), left) || !strings.Contains(err.Error(), "interrupted import") {
		t.Fatalf("import over an interrupted one: %v", err)
	}
	if _, err := os.Stat(left); err != nil {
		t.Fatalf("the leftover was touched: %v", err)
	}
	// Killed with the marker written (and maybe part of the store moved): named too.
	if err := os.WriteFile(filepath.Join(target, stores.ImportMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Import(src, target, openFile, nil)
	if !errors.Is(err, ErrTargetExists) || !strings.Contains(err.Error(), stores.ImportMarker) || !strings.Contains(err.Error(), "interrupted import") {
		t.Fatalf("import over an interrupted one that left its marker: %v", err)
	}
}

// TestImportNamesAnInterruptedImportBeside: an import killed into a target that did not exist
// leaves its hidden temporary directory beside it (maybe as big as the store). The next
// import ignored it (and built another); now it names it and writes nothing until it is
// removed.
func TestImportNamesAnInterruptedImportBeside(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	target := filepath.Join(parent, "new")
	left := filepath.Join(parent, ".new.import-123")
	writeFile(t, filepath.Join(left, "meta.log"), []byte("partial"))
	for _, check := range []func() error{func() error { return CheckTarget(target) }, func() error { return Import(src, target, openFile, nil) }} {
		err := check()
		if !errors.Is(err, ErrInterruptedImport) || !strings.Contains(err.Error(), left) {
			t.Fatalf("import beside an interrupted one: %v", err)
		}
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Fatalf("the refused import wrote: %v", entries)
	}
	if err := os.RemoveAll(left); err != nil {
		t.Fatal(err)
	}
	if err := Import(src, target, openFile, nil); err != nil {
		t.Fatal(err)
	}
}

// TestImportFailureLeavesNothing: a store that fails mid-import leaves no target and no
// temporary directory.
func TestImportFailureLeavesNothing(t *testing.T) {
	nss := sampleStore(t)
	src, err := Scan(nss, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The nss store changes between Scan and Import: the second read fails.
	dat := filepath.Join(nss, "orders", "msgs.2.dat")
	b, _ := os.ReadFile(dat)
	writeFile(t, dat, b[:len(b)-3])
	parent := t.TempDir()
	for _, target := range []string{filepath.Join(parent, "new"), t.TempDir()} { // created; existing, empty
		err = Import(src, target, openFile, nil)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != dat {
			t.Fatalf("import of a changed store: %v", err)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Fatalf("left behind: %v", entries)
		}
		if entries, _ := os.ReadDir(target); len(entries) != 0 {
			t.Fatalf("left behind in the target: %v", entries) // the marker too
		}
	}
}

func TestNotAStore(t *testing.T) {
	dir := t.TempDir()
	if _, err := Scan(dir, Options{}); !errors.Is(err, ErrNotNSSStore) {
		t.Fatalf("empty directory: %v", err)
	}
	writeFile(t, filepath.Join(dir, serverFile), versioned())
	if _, err := Scan(dir, Options{}); !errors.Is(err, ErrNotNSSStore) {
		t.Fatalf("server.dat with no record: %v", err)
	}
}

func TestSkipClients(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{SkipClients: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Clients) != 0 || len(src.Notes) != 1 || !strings.Contains(src.Notes[0], "2 client registration(s) left out") {
		t.Fatalf("clients %+v notes %q", src.Clients, src.Notes)
	}
	// clients.dat is still checked.
	dir := sampleStore(t)
	mutate(t, filepath.Join(dir, clientsFile), func(b []byte) []byte { return b[:len(b)-1] })
	if _, err := Scan(dir, Options{SkipClients: true}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged clients.dat with SkipClients: %v", err)
	}
}

// TestImportIntoEmptyDirOfReadOnlyParent: an existing empty target directory is filled
// where it is — it may be a mount point (a volume: removing it fails, and its parent is
// another file system) or the only directory the importing user may write — never built
// beside it in its parent and renamed over it.
func TestImportIntoEmptyDirOfReadOnlyParent(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]OpenFunc{"file": openFile, "bolt": openBolt} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			target := filepath.Join(parent, "new")
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			readOnly(t, parent)
			if err := Import(src, target, open, nil); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(target)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Fatalf("left in the target: %s", e.Name())
				}
			}
			st, err := open(target)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rs, err := st.Recover()
			if err != nil || rs == nil || len(rs.Channels) != len(src.Channels) {
				t.Fatalf("recover: %v %v", rs, err)
			}
		})
	}
}

// readOnly makes dir unwritable until the end of the test: by its mode, and for root
// (whom modes do not stop) by the immutable attribute, when the file system has it.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	if os.Geteuid() != 0 {
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot make %s read-only for root: %v %s", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
}

// A channel whose name is not UTF-8 (nss took any bytes) is refused by name: Starling's
// channel names travel in protobuf string fields, and no client could read the channel.
func TestScanRefusesNonUTF8Channel(t *testing.T) {
	dir := sampleStore(t)
	bad := filepath.Join(dir, "bad\xffname")
	writeSlice(t, bad, 1, msgRange("bad\xffname", 1, 3), false)
	writeFile(t, filepath.Join(bad, subsFile), versioned())
	_, err := Scan(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "not UTF-8") || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Scan: %v, want a refusal naming %s", err, bad)
	}
}

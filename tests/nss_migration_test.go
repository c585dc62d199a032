package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// Migration from nats-streaming-server (issue 12): the real nss v0.25.6 binary (installed
// by `make tools`) writes a file store — three channels of messages of several sizes over
// several file slices, a durable that acknowledged part of a channel and closed (a position
// and pending messages), a durable queue group whose last member left (its shadow), a client
// still registered — then `starling store import --from-nss` (the built binary) turns it
// into a Starling store of each durable type, Starling starts on it, and stan.go checks
// that every message replays with its sequence, timestamp and data and that the durables
// resume at their first unacknowledged message, flagged redelivered.

// nssBinary returns nats-streaming-server: $NSS_BIN, or the one `make tools` installs; the
// test is skipped outside make without it.
func nssBinary(t *testing.T) string { return madeTool(t, "NSS_BIN", "nats-streaming-server") }

// nssChannels are the channels published into nss and how many messages each gets.
var nssChannels = []struct {
	name string
	n    int
}{{"orders", 3000}, {"events", 1200}, {"blobs", 200}}

// nssPayload is message i of a channel: sizes from empty to 8 KB depending on the channel.
func nssPayload(channel string, i int) []byte {
	var size int
	switch channel {
	case "orders":
		size = i % 300
	case "events":
		size = 16
	default:
		size = 8000 + i
	}
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i*7 + j)
	}
	return append([]byte(fmt.Sprintf("%s-%d:", channel, i)), b...)
}

// stored is what a server delivered of one message.
type stored struct {
	time int64
	data []byte
}

// readChannel replays a whole channel with a new plain subscription and returns each
// message by sequence.
func readChannel(t *testing.T, sc stan.Conn, channel string, n int) map[uint64]stored {
	t.Helper()
	col := newStanMsgs()
	sub, err := sc.Subscribe(channel, col.add, stan.DeliverAllAvailable(), stan.MaxInflight(n+10))
	must(t, err)
	defer sub.Unsubscribe()
	msgs := col.waitN(t, n, 30*time.Second)
	out := make(map[uint64]stored, n)
	for _, m := range msgs {
		out[m.Sequence] = stored{time: m.Timestamp, data: m.Data}
	}
	if len(out) != n {
		t.Fatalf("%s: %d distinct messages of %d", channel, len(out), n)
	}
	return out
}

// nssSub is a subscription as nss's /streaming/channelsz shows it.
type nssSub struct {
	ClientID     string `json:"client_id"`
	DurableName  string `json:"durable_name"`
	QueueName    string `json:"queue_name"`
	LastSent     uint64 `json:"last_sent"`
	PendingCount int    `json:"pending_count"`
}

func nssSubs(t *testing.T, monitor, channel string) ([]nssSub, error) {
	t.Helper()
	resp, err := http.Get("http://" + monitor + "/streaming/channelsz?subs=1&channel=" + channel)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ch struct {
		Subscriptions []nssSub `json:"subscriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil {
		return nil, err
	}
	return ch.Subscriptions, nil
}

// waitNSSSub waits until nss reports the subscription of client on channel at lastSent
// with pending unacknowledged messages (so that every ack was processed).
func waitNSSSub(t *testing.T, monitor, channel, client string, lastSent uint64, pending int) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		subs, err := nssSubs(t, monitor, channel)
		if err != nil {
			return err
		}
		for _, s := range subs {
			if s.ClientID == client {
				if s.LastSent == lastSent && s.PendingCount == pending {
					return nil
				}
				return fmt.Errorf("%s: last sent %d pending %d", client, s.LastSent, s.PendingCount)
			}
		}
		return fmt.Errorf("no subscription of %s on %s: %+v", client, channel, subs)
	})
}

// buildNSSStore runs nss on a file store in dir, fills it and stops it with SIGTERM. It
// returns every message as nss delivered it, by channel and sequence.
func buildNSSStore(t *testing.T, dir string) map[string]map[uint64]stored {
	port, mport := freePort(t), freePort(t)
	p := startProc(t, nssBinary(t), "-cid", "test-cluster", "-store", "file", "-dir", dir,
		"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport), "--file_slice_max_msgs", "1000")
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	monitor := fmt.Sprintf("127.0.0.1:%d", mport)
	var pub stan.Conn
	waitFor(t, 20*time.Second, func() (err error) {
		pub, err = stan.Connect("test-cluster", "publisher", stan.NatsURL(url), stan.ConnectWait(time.Second))
		return err
	})
	for _, ch := range nssChannels {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for i := 1; i <= ch.n; i++ {
			wg.Add(1)
			if _, err := pub.PublishAsync(ch.name, nssPayload(ch.name, i), func(_ string, err error) {
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				wg.Done()
			}); err != nil {
				t.Fatalf("publish %s %d: %v", ch.name, i, err)
			}
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%s: %d publishes failed: %v", ch.name, len(errs), errs[0])
		}
	}
	want := map[string]map[uint64]stored{}
	for _, ch := range nssChannels {
		want[ch.name] = readChannel(t, pub, ch.name, ch.n)
	}
	must(t, pub.Close())

	// A durable acknowledging 1..1000 of orders with 50 in flight: nss sends 1001..1050 and
	// waits; the durable closes (kept, offline) with 1001..1050 pending.
	worker, err := stan.Connect("test-cluster", "worker", stan.NatsURL(url))
	must(t, err)
	sub, err := worker.Subscribe("orders", func(m *stan.Msg) {
		if m.Sequence <= 1000 {
			_ = m.Ack()
		}
	}, stan.DurableName("dur"), stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(50), stan.AckWait(time.Minute))
	must(t, err)
	waitNSSSub(t, monitor, "orders", "worker", 1050, 50)
	must(t, sub.Close())
	must(t, worker.Close())

	// A durable queue group on events: its only member acknowledges 1..300 with 10 in
	// flight and leaves; the group lives on as nss's shadow with 301..310 pending.
	qworker, err := stan.Connect("test-cluster", "qworker", stan.NatsURL(url))
	must(t, err)
	qsub, err := qworker.QueueSubscribe("events", "workers", func(m *stan.Msg) {
		if m.Sequence <= 300 {
			_ = m.Ack()
		}
	}, stan.DurableName("qdur"), stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(10), stan.AckWait(time.Minute))
	must(t, err)
	waitNSSSub(t, monitor, "events", "qworker", 310, 10)
	must(t, qsub.Close())
	must(t, qworker.Close())

	// A client still registered when nss stops, with a plain subscription.
	idle, err := stan.Connect("test-cluster", "idle", stan.NatsURL(url))
	must(t, err)
	_, err = idle.Subscribe("blobs", func(*stan.Msg) {})
	must(t, err)

	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	var exit *exec.ExitError
	if err := p.wait(t, 20*time.Second); err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 143) {
		t.Fatalf("nss stop: %v\n%s", err, p.out.String())
	}
	idle.NatsConn().Close()
	return want
}

// runImport runs `starling store import` with args and returns its exit code and output.
func runImport(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(starlingBinary(t), append([]string{"store", "import"}, args...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("store import: %v", err)
	return 0, ""
}

// treeSum fingerprints every file under dir (names and contents).
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "%s\n", strings.TrimPrefix(p, dir))
		_, err = io.Copy(h, f)
		return err
	}))
	return fmt.Sprintf("%x", h.Sum(nil))
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	must(t, filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(to, strings.TrimPrefix(p, from))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	}))
}

func TestMigrateFromNSS(t *testing.T) {
	nssBinary(t)
	nssDir := filepath.Join(t.TempDir(), "nss")
	want := buildNSSStore(t, nssDir)
	if slices, _ := filepath.Glob(filepath.Join(nssDir, "orders", "msgs.*.dat")); len(slices) != 3 {
		t.Fatalf("orders should span 3 file slices: %v", slices)
	}
	sum := treeSum(t, nssDir)

	t.Run("dry-run", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "new")
		code, out := runImport(t, "--from-nss", nssDir, "--dir", target, "--dry-run")
		if code != 0 {
			t.Fatalf("dry run: exit %d\n%s", code, out)
		}
		for _, s := range []string{
			`cluster ID "test-cluster": 3 channel(s), 4400 message(s), 1 client(s)`,
			"client idle",
			"channel orders: 3000 message(s), first 1 last 3000",
			"channel events: 1200 message(s), first 1 last 1200",
			"channel blobs: 200 message(s), first 1 last 200",
			`durable "dur", client worker, offline, last sent 1050, 50 pending (1001-1050)`,
			`durable queue "qdur" group "workers", no client, last sent 310, 10 pending (301-310)`,
			"dry run: nothing written",
		} {
			if !strings.Contains(out, s) {
				t.Errorf("dry run output lacks %q", s)
			}
		}
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
		if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("dry run created %s: %v", target, err)
		}
	})

	for _, store := range []string{"file", "bolt"} {
		t.Run(store, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "new")
			if code, out := runImport(t, "--from-nss", nssDir, "--dir", target, "--store", store); code != 0 {
				t.Fatalf("import: exit %d\n%s", code, out)
			}
			checkImported(t, store, target, want)
		})
	}
	if treeSum(t, nssDir) != sum {
		t.Fatal("the import changed the nss store")
	}

	t.Run("damaged", func(t *testing.T) {
		for _, c := range []struct {
			name, file string
			damage     func(b []byte) []byte
			reason     string
		}{
			{"flipped byte", "orders/msgs.2.dat", func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }, "checksum mismatch"},
			{"cut mid-record", "events/msgs.1.dat", func(b []byte) []byte { return b[:len(b)-5] }, "the file ends mid-record"},
			{"subs cut mid-record", "orders/subs.dat", func(b []byte) []byte { return b[:len(b)-3] }, "the file ends mid-record"},
		} {
			t.Run(c.name, func(t *testing.T) {
				src := filepath.Join(t.TempDir(), "nss")
				copyTree(t, nssDir, src)
				path := filepath.Join(src, c.file)
				b, err := os.ReadFile(path)
				must(t, err)
				must(t, os.WriteFile(path, c.damage(b), 0o644))
				parent := t.TempDir()
				target := filepath.Join(parent, "new")
				code, out := runImport(t, "--from-nss", src, "--dir", target)
				if code != 1 || !strings.Contains(out, path+": offset ") || !strings.Contains(out, c.reason) || !strings.Contains(out, "nothing was written") {
					t.Fatalf("exit %d, want 1 naming %s, an offset and %q:\n%s", code, path, c.reason, out)
				}
				if entries, _ := os.ReadDir(parent); len(entries) != 0 {
					t.Fatalf("the failed import left %v", entries)
				}
			})
		}
	})
}

// checkImported starts Starling on the imported store and checks what stan.go sees.
func checkImported(t *testing.T, store, dir string, want map[string]map[uint64]stored) {
	_, url, _ := startBinary(t, "-cid", "test-cluster", "--store", store, "--dir", dir)
	sc, err := stan.Connect("test-cluster", "checker", stan.NatsURL(url))
	must(t, err)
	defer sc.Close()
	for _, ch := range nssChannels {
		got := readChannel(t, sc, ch.name, ch.n)
		for seq, w := range want[ch.name] {
			g, ok := got[seq]
			if !ok || g.time != w.time || !bytes.Equal(g.data, w.data) {
				t.Fatalf("%s %d: got time %d data %.20q (present %v), nss had time %d data %.20q", ch.name, seq, g.time, g.data, ok, w.time, w.data)
			}
		}
	}

	// The durable resumes at 1001, the first unacknowledged message, flagged redelivered
	// like the rest of what was pending; what it had not been sent comes unflagged.
	worker, err := stan.Connect("test-cluster", "worker", stan.NatsURL(url))
	must(t, err)
	defer worker.Close()
	col := newStanMsgs()
	_, err = worker.Subscribe("orders", func(m *stan.Msg) { col.add(m); _ = m.Ack() },
		stan.DurableName("dur"), stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(500), stan.AckWait(time.Minute))
	must(t, err)
	checkResume(t, "dur", col, 1001, 1050, 3000)

	qworker, err := stan.Connect("test-cluster", "qworker", stan.NatsURL(url))
	must(t, err)
	defer qworker.Close()
	qcol := newStanMsgs()
	_, err = qworker.QueueSubscribe("events", "workers", func(m *stan.Msg) { qcol.add(m); _ = m.Ack() },
		stan.DurableName("qdur"), stan.SetManualAckMode(), stan.MaxInflight(500), stan.AckWait(time.Minute))
	must(t, err)
	checkResume(t, "qdur", qcol, 301, 310, 1200)

	// The client nss still had registered is gone: a new connection with its ID replaces it.
	idle, err := stan.Connect("test-cluster", "idle", stan.NatsURL(url), stan.ConnectWait(10*time.Second))
	must(t, err)
	must(t, idle.Close())
}

// checkResume checks a resumed durable's deliveries: first the message first, then every
// message up to last, those up to pendingTo flagged redelivered, the others not.
func checkResume(t *testing.T, name string, col *stanMsgs, first, pendingTo, last uint64) {
	t.Helper()
	msgs := col.waitN(t, int(last-first+1), 30*time.Second)
	if m := msgs[0]; m.Sequence != first || !m.Redelivered {
		t.Fatalf("%s: first delivery %d (redelivered %v), want %d redelivered", name, m.Sequence, m.Redelivered, first)
	}
	seen := map[uint64]bool{}
	for _, m := range msgs {
		if m.Sequence < first || m.Sequence > last {
			t.Fatalf("%s: got %d, outside %d-%d", name, m.Sequence, first, last)
		}
		if !seen[m.Sequence] && m.Redelivered != (m.Sequence <= pendingTo) {
			t.Fatalf("%s: %d first came with redelivered %v", name, m.Sequence, m.Redelivered)
		}
		seen[m.Sequence] = true
	}
	if len(seen) != int(last-first+1) {
		t.Fatalf("%s: %d distinct messages, want %d-%d", name, len(seen), first, last)
	}
}

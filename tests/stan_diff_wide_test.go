package tests

// The wide variant of the differential test (stan_diff_test.go): both servers run from one
// configuration file (diffWideConf) with per-channel and wildcard limits, max_channels 6
// and max_payload 2 KB, and the generator draws, besides the usual operations, those the
// narrow one does not: channels with their own max_msgs, max_bytes and max_subs (so
// `too many subscriptions per channel` and `too many channels` come back), publishes of
// an empty payload, of the largest payload that fits and of one byte more, more invalid
// channel names, odd client IDs (empty, one character, long, invalid), StartAtTimeDelta
// of next to nothing, of two centuries and of minus an hour, a MaxInflight of 1000, acks
// of an already acknowledged message and of a sequence never sent, and more queue groups
// (durable ones leaving by close or unsubscribe and coming back).
//
// `go test -run TestStanDiffWide` runs a fixed seed on memory stores (25 operations) and one
// with restarts (20; nss on its file store, Starling on bolt, or on STANDIFF_STORE), in
// about 3 s; STANDIFF_SEEDS, STANDIFF_SEED and STANDIFF_OPS as for TestStanDiff.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
	"github.com/nats-io/stan.go/pb"
)

const diffWideConf = `
max_payload: 2048
streaming {
  cluster_id: test-cluster
  store_limits {
    max_channels: 6
    max_msgs: 20
    max_subs: 5
    channels {
      "a": { max_msgs: 5, max_bytes: 3000 }
      "b.*": { max_subs: 2, max_msgs: 8 }
      "b.x": { max_msgs: -1, max_subs: 3 }
      "c.>": { max_bytes: 600, max_age: "1h" }
    }
  }
}
`

// The literal a and b.x exist from the start: four more channels fit.
var (
	diffWideChannels = []string{"a", "a", "b.x", "b.x", "b.y", "c.1", "c.2.z", "d", "e"}
	diffWideBad      = []string{"a.*", "a.>", "a..b", ".a", "", "a.", "*", ">", "b.x."}
	// Client IDs up to 256 bytes: Starling refuses a longer one ("stan: invalid clientID:
	// longer than 256 bytes", streaming.MaxClientIDLen, a bound on what a client makes the
	// server keep and send), where nss has no bound; a deliberate difference, not drawn.
	diffOddIDs = []string{"", "x", strings.Repeat("k", 255), strings.Repeat("L", 256), "a.b", "a b", "ä"}
	diffDeltas = []time.Duration{time.Nanosecond, 200 * 365 * 24 * time.Hour, -time.Hour, time.Hour}
)

// The largest payload of a publish from client cN that fits in max_payload (2048) with
// stan.go's PubMsg around it: client ID 2+2, guid and connection ID (NUIDs) 2+22 each,
// subject 2+len, data 3+len; one byte more fails in the client ("maximum payload exceeded").
const diffMaxFit = 2048 - 57

func diffPayload(op diffOp, step int) []byte {
	base := fmt.Sprintf("op%d", step)
	switch op.payload {
	case 1:
		return nil
	case 2:
		return []byte(base + strings.Repeat("x", diffMaxFit-len(op.channel)-len(base)))
	case 3:
		return []byte(base + strings.Repeat("x", diffMaxFit+1-len(op.channel)-len(base)))
	}
	return []byte(base)
}

// abbrev shortens a long payload or ID for the logs and snapshots.
func abbrev(s string) string {
	if len(s) <= 24 {
		return s
	}
	return fmt.Sprintf("%s…(%d)", s[:8], len(s))
}

func (o diffOp) deltaOrHour() time.Duration {
	if o.delta == 0 {
		return time.Hour
	}
	return o.delta
}

// wideDraw is the wide generator's step: now and then one of its own operations, else the
// narrow one's with the wide channels and options.
func (g *diffGen) wideDraw() diffOp {
	r := g.r
	subs := g.openSubs()
	if n := r.IntN(100); n < 4 {
		return diffOp{kind: dConnectOdd, oddID: diffOddIDs[r.IntN(len(diffOddIDs))], channel: "d"}
	} else if m := g.manualSubs(subs); n < 12 && len(m) > 0 && len(g.connected()) > 0 {
		return diffOp{kind: dAckOdd, sub: m[r.IntN(len(m))], oddSeq: r.IntN(2) == 0}
	}
	op := g.draw()
	switch op.kind {
	case dPublish:
		if r.IntN(10) == 0 {
			// Only the wildcard ones: both servers ignore a publish to a channel with an
			// empty token, and the client waits for its ack timeout (3 s).
			op.channel = diffWideBad[r.IntN(2)]
		} else {
			op.channel = diffWideChannels[r.IntN(len(diffWideChannels))]
		}
		if p := r.IntN(10); p < 3 {
			op.payload = p + 1
		}
	case dSubscribe:
		if r.IntN(8) == 0 {
			op.channel = diffWideBad[r.IntN(len(diffWideBad))]
		} else {
			op.channel = diffWideChannels[r.IntN(len(diffWideChannels))]
		}
		if op.start == startDelta {
			op.delta = diffDeltas[r.IntN(len(diffDeltas))]
		}
		if op.manual && r.IntN(6) == 0 {
			op.inflight = 1000
		}
		if op.queue == "" && !g.file && r.IntN(3) == 0 {
			op.queue = fmt.Sprintf("q%d", r.IntN(2))
		}
	}
	return op
}

// connectOdd connects with an odd client ID; connected, it publishes once and closes.
func (w *diffWorld) connectOdd(op diffOp, step int) string {
	sc, err := stan.Connect("test-cluster", op.oddID, stan.NatsURL(w.url), stan.ConnectWait(5*time.Second), stan.PubAckWait(3*time.Second))
	if err != nil {
		return errStr(err)
	}
	res := "ok; publish: " + errStr(sc.Publish(op.channel, diffPayload(op, step)))
	return res + "; close: " + errStr(sc.Close())
}

// ackOdd acknowledges again the subscription's oldest acknowledged message, or one of its
// messages with the sequence changed to one never sent.
func (w *diffWorld) ackOdd(op diffOp) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.subs[op.sub]
	if t.sub == nil || t.closed || len(t.msgs) == 0 {
		return "nothing to ack"
	}
	if op.oddSeq {
		m := *t.msgs[0].m
		m.MsgProto = pb.MsgProto{Sequence: 1 << 40, Subject: m.Subject}
		return errStr(m.Ack())
	}
	for _, m := range t.msgs {
		if m.acked {
			return errStr(m.m.Ack())
		}
	}
	return "nothing acked"
}

func writeWideConf(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "wide.conf")
	must(t, os.WriteFile(p, []byte(diffWideConf), 0o644))
	return p
}

// startWideProc runs bin with the wide configuration on a memory store, or with store
// (file, bolt) in a new directory.
func startWideProc(t *testing.T, bin, store string) *diffProc {
	port := freePort(t)
	d := &diffProc{t: t, bin: bin, url: fmt.Sprintf("nats://127.0.0.1:%d", port),
		args: []string{"-c", writeWideConf(t), "-a", "127.0.0.1", "-p", fmt.Sprint(port)}}
	if store != "" {
		d.args = append(d.args, "-st", store, "--dir", t.TempDir())
	}
	d.p = startProc(t, bin, d.args...)
	waitNATS(t, d.url)
	return d
}

func TestStanDiffWide(t *testing.T) {
	nss := nssBinary(t)
	seeds, ops := diffSeeds(t, []uint64{1}, 25)
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rp, gp := startWideProc(t, nss, ""), startWideProc(t, starlingBinary(t), "")
			runDiffWide(t, seed, ops, &diffWorld{name: "nss", url: rp.url}, &diffWorld{name: "starling", url: gp.url}, false)
		})
	}
}

// The wide operations with restarts: nss on its file store, Starling on bolt.
func TestStanDiffWideRestart(t *testing.T) {
	nss := nssBinary(t)
	seeds, ops := diffSeeds(t, []uint64{1}, 20)
	store := os.Getenv("STANDIFF_STORE") // Starling's: bolt unless given
	if store == "" {
		store = "bolt"
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rp, gp := startWideProc(t, nss, "file"), startWideProc(t, starlingBinary(t), store)
			ref := &diffWorld{name: "nss", url: rp.url, restart: rp.restart}
			got := &diffWorld{name: "starling", url: gp.url, restart: gp.restart}
			runDiffWide(t, seed, ops, ref, got, true)
		})
	}
}

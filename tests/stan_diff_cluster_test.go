package tests

// "A failover is a restart": the differential test of stan_diff_test.go, file variant, with
// a three-node Starling cluster (file stores, --clustered) against one nats-streaming-server
// v0.25.6 on a file store. The same seeded operations run on both; at each of the file
// variant's restart points nss is stopped (SIGTERM) and started again on its directory,
// while Starling's leader is SIGKILLed or SIGTERMed (drawn per restart from the seed) and
// started again once another node leads. The stan.go clients are given all three nodes'
// URLs, so those on the lost leader reconnect to another node, as nss's reconnect to it.
// After each operation, and past a restart, what each call returned, what each
// subscription (durable, queue group) was delivered with its redelivered flags, and after
// each restart and at the end the stored sequences and payloads of each channel, must be
// the same.
//
// Allowed differences, each handled where noted:
//   - a publish that fails on Starling right after a failover (its PubAck lost with the
//     leader, or timed out during the election) is retried by the client, as an
//     at-least-once application must; such a retry is counted, and its outcome compared.
//     A retried publish may be stored twice (a new sequence); an acknowledged publish must
//     be stored once, which the channel replay checks (the extra copy of a retried one
//     would show there as a difference, and is then reported as such).
//   - a message first sent after a failover may carry the redelivered flag on Starling
//     where nss sends it unflagged: Starling's sent records replicate lazily, so a new
//     leader takes every message up to each channel's last sequence as possibly sent by
//     the old one and flags it when first sent (streaming/leader.go takeOver, as after a
//     crash standalone), after a SIGTERM handover too. Allowed only for the first delivery
//     of a sequence to a subscription, up to the channel's last sequence at the last
//     failover (clusterSnapDiff); the reverse (nss flags, Starling not) never is.
//   - redeliveries may come later (the takeover's pass, an ack wait restarted): deliveries
//     are compared once both are quiet, with runDiff's window of 3 s for slow ones.
//
// `go test -run TestStanDiffCluster` runs one fixed seed; STANDIFF_CLUSTER_SEEDS=N runs N
// random seeds more, STANDIFF_CLUSTER_SEED=S one seed, STANDIFF_CLUSTER_OPS the operations
// per seed (default 20: the fixed seed, with a SIGKILL and a SIGTERM failover at steps 11
// and 12, stays under 10 s), STANDIFF_CLUSTER_RESTARTS one in how many operations is a restart
// (default 20, as the file variant).

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStanDiffCluster(t *testing.T) {
	nss := nssBinary(t)
	starlingBinary(t)
	seeds, ops := clusterDiffSeeds(t, []uint64{1}, 20)
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rp := startDiffProc(t, nss)
			c := startStanCluster(t, "-mm", "20", "-msu", "5")
			waitServing(t, c.leader(10*time.Second))
			fo := &clusterFailover{c: c, r: rand.New(rand.NewPCG(seed, 1))}
			ref := &diffWorld{name: "nss", url: rp.url, restart: func(bool) { rp.restart(false) }}
			got := &diffWorld{name: "starling", url: c.urlList(), restart: fo.restart}
			runClusterDiff(t, seed, ops, ref, got, fo)
		})
	}
}

func clusterDiffSeeds(t *testing.T, fixed []uint64, ops int) ([]uint64, int) {
	return envSeeds(t, "STANDIFF_CLUSTER", fixed, ops)
}

// urlList is every node's client URL, for a client that may connect to any.
func (c *stanCluster) urlList() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.url())
	}
	return strings.Join(urls, ",")
}

// clusterFailover stops the cluster's leader and starts it again.
type clusterFailover struct {
	c    *stanCluster
	r    *rand.Rand
	last string // how the last failover went, for the op log
	err  error  // the last failover's failure (the cluster did not converge)
	// stopped is the output of the last node stopped, shown when the cluster then fails
	stopped string
}

// routeSettle is how long a failover waits, once the restarted node's routes are up, for a
// duplicate route to be retired.
var routeSettle = time.Second

func (f *clusterFailover) restart(bool) {
	c := f.c
	lead := c.leader(15 * time.Second)
	kill := f.r.IntN(3) > 0
	start := time.Now()
	if kill {
		lead.kill()
	} else {
		lead.terminate()
	}
	next := c.leader(15 * time.Second)
	took := time.Since(start)
	how := "SIGTERM"
	if kill {
		how = "SIGKILL"
	}
	f.last = fmt.Sprintf("%s %s, %s leads after %v", how, lead.name, next.name, took.Round(time.Millisecond))
	f.stopped = lead.name + "'s output before the stop:\n" + tail(lead.p.out.String(), 6000)
	lead.restart()
	// The restarted node and its peers dial each other at once, and the tie-break retires
	// one of the two routes; a request crossing the mesh then was lost now and then (a
	// subscribe or unsubscribe timed out on Starling alone, seeds 451350796, 566477244,
	// 566477256 of the first hunts: not a streaming matter, left to core). The mesh is let
	// settle before the clients go on.
	waitMesh(c.t, c.nodes...)
	time.Sleep(routeSettle)
	if err := c.convergedErr(30 * time.Second); err != nil {
		// Reported by the runner (this runs on the world's goroutine, not the test's).
		f.err = fmt.Errorf("after %s: not converged in 30 s: %v\n%s\n%s", f.last, err, c.raftStates(), f.stopped)
		return
	}
	waitServing(c.t, next)
}

// raftStates describes each running node's raft position and digest.
func (c *stanCluster) raftStates() string {
	var b strings.Builder
	for _, n := range c.nodes {
		if !n.up() {
			fmt.Fprintf(&b, "  %s down\n", n.name)
			continue
		}
		z, err := n.serverz(true)
		fmt.Fprintf(&b, "  %s: role %s term %d commit %d applied %d msgs %d digest %.12s (%v)\n", n.name, z.Role,
			z.Raft.Term, z.Raft.CommitIndex, z.Raft.AppliedIndex, z.TotalMsgs, z.Digest, err)
		if os.Getenv("STANDIFF_CLUSTER_DUMP") != "" {
			for i, a := range n.args {
				if a == "--dir" && i+1 < len(n.args) {
					_ = filepath.WalkDir(n.args[i+1], func(p string, d fs.DirEntry, err error) error {
						if err == nil && strings.Contains(p, "snap") {
							fmt.Fprintf(&b, "    %s\n", p)
						}
						return nil
					})
				}
			}
			for _, path := range []string{"/streaming/channelsz?subs=1", "/streaming/clientsz?subs=1"} {
				var v any
				err := n.monGet(path, &v)
				j, _ := json.Marshal(v)
				fmt.Fprintf(&b, "    %s %s (%v)\n", path, j, err)
			}
		}
	}
	return b.String()
}

// waitServing waits until the leader's streaming engine answers a connect (its takeover
// done: a leader elected has not always subscribed to the protocol subjects yet).
func waitServing(t *testing.T, n *node) {
	t.Helper()
	waitFor(t, 15*time.Second, func() error {
		sc, err := stanConnectTo(n.url(), "cdiff-probe")
		if err != nil {
			return err
		}
		return sc.Close()
	})
}

// runClusterDiff is runDiff on the file variant's generator with the cluster's allowed
// differences and a channel replay after each restart and at the end.
func runClusterDiff(t *testing.T, seed uint64, ops int, ref, got *diffWorld, fo *clusterFailover) {
	g := &diffGen{file: true}
	if s := os.Getenv("STANDIFF_CLUSTER_RESTARTS"); s != "" {
		g.odds, _ = strconv.Atoi(s)
	}
	restarted := false // a failover happened: publishes may need a retry
	// uncertain is each channel's last sequence at the last failover: Starling's new leader
	// flags every message up to it redelivered when first sent (see clusterSnapDiff).
	uncertain := map[string]uint64{}
	retries := 0
	runDiffOps(t, seed, ops, ref, got, g, diffHooks{
		seedEnv: "STANDIFF_CLUSTER_SEED",
		clock:   true,
		// Allowed: a publish failing on Starling after a failover is retried.
		retry: func(op diffOp, ra, rg string) bool {
			if op.kind == dPublish && restarted && rg != "ok" && rg != ra {
				retries++
				return true
			}
			return false
		},
		restarted: func() (string, error) {
			if fo.err != nil {
				return "", fo.err
			}
			restarted = true
			for ch, n := range g.pubs {
				uncertain[ch] = n
			}
			return " [starling: " + fo.last + "]", nil
		},
		differ: func(sa, sg map[string]string) []string { return clusterSnapDiff(sa, sg, ref, uncertain) },
		check: func() string {
			for _, ch := range diffChannels {
				a, b := ref.replay(ch, g.pubs[ch]), got.replay(ch, g.pubs[ch])
				if a != b {
					return fmt.Sprintf("channel %s holds\n  nss:     %s\n  starling:%s", ch, a, b)
				}
			}
			return ""
		},
		done: func() {
			if retries > 0 {
				t.Logf("seed %d: %d publishes retried on Starling after a failover", seed, retries)
			}
		},
	})
}

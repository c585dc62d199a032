package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// §3, a full disk, clustered: the leader's raft log cannot store an entry (ENOSPC on its
// writes and preallocations). It steps down and acknowledges nothing it could not store,
// says why in its log, and the other two go on serving; with space freed and the node
// restarted, it catches up. Nothing acknowledged is lost.
func TestStanClusterRaftDiskFull(t *testing.T) {
	pc := startPowerCluster(t, uint64(time.Now().UnixNano()))
	l := newStanLoad(t, pc.fakes(), "full", 300)
	defer l.close()
	l.waitAcked(300, 20*time.Second)

	full := pc.leader()
	start := time.Now()
	end := l.fault(start)
	full.full.Store(true)
	l.waitAcked(1, 15*time.Second)
	back := time.Since(start)
	waitFor(t, 15*time.Second, func() error {
		for _, n := range pc.nodes {
			if n != full && n.srv.Serverz().Role == "Leader" {
				return nil
			}
		}
		return fmt.Errorf("no new leader")
	})
	l.waitAcked(300, 30*time.Second)
	t.Logf("%s's raft disk full: another node leads; the first PubAck after %v", full.id, back)
	if r := full.srv.Serverz().Role; r == "Leader" {
		t.Fatalf("%s leads with a full raft disk", full.id)
	}
	logs := full.logs.String()
	if !strings.Contains(logs, "STOPPED: the raft log could not store entries") || !strings.Contains(logs, "no space left on device") {
		t.Fatalf("%s's log does not say that its raft log's disk is full:\n%s", full.id, logs)
	}
	if n := strings.Count(logs, "failed to commit logs"); n > 1 {
		t.Errorf("%s failed to store entries as leader %d times: elected again with a full disk:\n%s", full.id, n, logs)
	}
	if err := full.srv.Health(); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("%s's health with a full raft disk: %v", full.id, err)
	}

	// Space freed: after a restart the node takes entries again and catches up.
	full.full.Store(false)
	full.stop()
	pc.start(full)
	pc.leader()
	l.waitAcked(300, 30*time.Second)
	end()
	t.Logf("after the restart: %v", pc.check(l))
}

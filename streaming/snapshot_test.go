package streaming

import (
	"bytes"
	"errors"
	"testing"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// newReplica is a bare state machine over a fresh memory store, as a follower has.
func newReplica(t *testing.T) (*stateMachine, stores.Store) {
	t.Helper()
	store := newMemStore(t)
	if err := store.Init(stores.ServerInfo{ClusterID: "replica"}); err != nil {
		t.Fatal(err)
	}
	return newStateMachine(store), store
}

func applyEntries(t *testing.T, m *stateMachine, entries []recorded, keep func(any) bool) {
	t.Helper()
	for i, e := range entries {
		cmd, err := m.Decode(e.data)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if keep(cmd.Value) {
			m.Apply(uint64(i+1), []raftlog.Command{cmd})
		}
	}
}

func persist(t *testing.T, m *stateMachine) []byte {
	t.Helper()
	sn, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var b bytes.Buffer
	if err := sn.Persist(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSnapshotRestore: a replica that applied the first half of the leader's log, then
// only the messages of the rest, ends equal to the leader once it restores the leader's
// snapshot — clients and subscriptions that went away meanwhile are removed, new ones
// created, pending sets replaced — and a snapshot of it is the leader's, byte for byte.
func TestSnapshotRestore(t *testing.T) {
	leader, rec := newRecordedEngine(t)
	runScenario(t, leader, rec)
	snap := persist(t, leader.sm)

	replica, store := newReplica(t)
	half := len(rec.entries) / 2
	applyEntries(t, replica, rec.entries[:half], func(any) bool { return true })
	applyEntries(t, replica, rec.entries[half:], func(v any) bool {
		switch v.(type) {
		case *cmdCreateChannel, *cmdPublish:
			return true
		}
		return false
	})
	if storeDigest(t, store) == storeDigest(t, leader.store) {
		t.Fatal("the replica equals the leader before the restore: the test proves nothing")
	}
	if err := replica.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if l, r := storeDigest(t, leader.store), storeDigest(t, store); l != r {
		t.Fatalf("restored replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
	}
	if !bytes.Equal(persist(t, replica), snap) {
		t.Fatal("a snapshot of the restored replica differs from the leader's")
	}
	// The log goes on after the snapshot on both alike: the replica's next channel ID is the
	// leader's.
	if replica.nextChanID != leader.sm.nextChanID {
		t.Fatalf("next channel ID %d, leader %d", replica.nextChanID, leader.sm.nextChanID)
	}
}

// TestRestoreRefusesWhatItCannotTrust: a snapshot that does not decode, or that names
// messages the store lacks, is refused and changes nothing.
func TestRestoreRefusesWhatItCannotTrust(t *testing.T) {
	leader, rec := newRecordedEngine(t)
	runScenario(t, leader, rec)
	snap := persist(t, leader.sm)

	replica, store := newReplica(t)
	applyEntries(t, replica, rec.entries[:3], func(any) bool { return true })
	before := storeDigest(t, store)
	if err := replica.Restore(bytes.NewReader(snap)); !errors.Is(err, errMissingMsgs) {
		t.Fatalf("restore without the messages: %v, want errMissingMsgs", err)
	}
	if err := replica.Restore(bytes.NewReader([]byte{0x12, 0x05, 0x0a})); !errors.Is(err, errBadSnapshot) {
		t.Fatalf("restore of a torn snapshot: %v, want errBadSnapshot", err)
	}
	if after := storeDigest(t, store); after != before {
		t.Fatalf("a refused restore changed the store\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

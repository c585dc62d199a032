package streaming

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"

	"github.com/starling-io/starling/stores"
)

// StateDigest hashes the replicated state — clients, and every channel's messages (with
// their sequences and timestamps) and subscriptions (positions and pending sets) — so that
// the nodes of a cluster can be compared: once they have applied the same log, their
// digests are equal. It reads every stored message under the state machine's lock, which
// holds the log's applies back meanwhile: for tests and for checks by hand
// (/streaming/serverz?digest=1), not for routine monitoring.
func (s *Server) StateDigest() (string, error) {
	d, _, err := s.digest(false)
	return d, err
}

// StateDigestParts is StateDigest, and the state it hashes in parts, each named and
// described so that two nodes whose digests differ tell which part does
// (/streaming/serverz?digest=parts): "clients" (their number and hash), "channel NAME"
// (its ID, first and last sequence and the hash of its messages) and "channel NAME sub ID"
// (the subscription's client, durable name, queue group, last sent, pending count and
// hash, closed, and the hash of its inboxes). The digest is the same as StateDigest's.
func (s *Server) StateDigestParts() (string, map[string]string, error) {
	return s.digest(true)
}

// digestWriter feeds the whole digest and, when parts are asked for, the current part's.
type digestWriter struct {
	all, part hash.Hash
	num       [8]byte
}

func (w *digestWriter) write(b []byte) {
	w.all.Write(b)
	if w.part != nil {
		w.part.Write(b)
	}
}

func (w *digestWriter) u64(v uint64) {
	binary.BigEndian.PutUint64(w.num[:], v)
	w.write(w.num[:])
}

func (w *digestWriter) str(v string) { w.u64(uint64(len(v))); w.write([]byte(v)) }

// begin starts a part (nothing without parts).
func (w *digestWriter) begin() {
	if w.part != nil {
		w.part.Reset()
	}
}

// sum is the current part's hash, short: enough to tell parts apart.
func (w *digestWriter) sum() string {
	if w.part == nil {
		return ""
	}
	return hex.EncodeToString(w.part.Sum(nil)[:8])
}

func (s *Server) digest(withParts bool) (string, map[string]string, error) {
	m := s.sm
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &digestWriter{all: sha256.New()}
	var parts map[string]string
	if withParts {
		w.part, parts = sha256.New(), map[string]string{}
	}
	ids := make([]string, 0, len(m.clients))
	for id := range m.clients {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w.begin()
	for _, id := range ids {
		c := m.clients[id]
		w.str(c.ID)
		w.str(c.HbInbox)
	}
	if withParts {
		parts["clients"] = fmt.Sprintf("%d %s", len(ids), w.sum())
	}
	chans := make([]*stores.Channel, 0, len(m.chans))
	for _, ch := range m.chans {
		chans = append(chans, ch)
	}
	slices.SortFunc(chans, func(a, b *stores.Channel) int { return cmp.Compare(a.Name, b.Name) })
	var msg stores.Msg
	for _, ch := range chans {
		w.begin()
		w.str(ch.Name)
		w.u64(ch.ID)
		st := ch.Msgs.State()
		w.u64(st.First)
		w.u64(st.Last)
		for seq := st.First; st.Msgs > 0 && seq <= st.Last; seq++ {
			if err := ch.Msgs.Load(seq, &msg); err != nil {
				return "", nil, fmt.Errorf("streaming: digest: channel %q seq %d: %w", ch.Name, seq, err)
			}
			w.u64(msg.Seq)
			w.u64(uint64(msg.Time))
			w.str(msg.Reply)
			w.str(string(msg.Data))
		}
		if withParts {
			parts["channel "+ch.Name] = fmt.Sprintf("id %d first %d last %d msgs %d %s", ch.ID, st.First, st.Last, st.Msgs, w.sum())
		}
		if err := digestSubs(ch, w, parts); err != nil {
			return "", nil, err
		}
	}
	return hex.EncodeToString(w.all.Sum(nil)), parts, nil
}

func digestSubs(ch *stores.Channel, w *digestWriter, parts map[string]string) error {
	subs, err := ch.Subs.Subs()
	if err != nil {
		return fmt.Errorf("streaming: digest: subscriptions of %q: %w", ch.Name, err)
	}
	slices.SortFunc(subs, func(a, b stores.RecoveredSub) int { return cmp.Compare(a.State.ID, b.State.ID) })
	for _, sub := range subs {
		st := sub.State
		w.begin()
		w.u64(st.ID)
		w.str(st.ClientID)
		w.str(st.DurableName)
		w.str(st.QGroup)
		w.str(st.Inbox)
		w.str(st.AckInbox)
		w.u64(st.LastSent)
		w.u64(uint64(len(sub.Pending))) // ascending (stores.RecoveredSub)
		for _, p := range sub.Pending {
			w.u64(p)
		}
		if st.IsClosed {
			w.u64(1)
		} else {
			w.u64(0)
		}
		if parts != nil {
			var lo, hi uint64
			if n := len(sub.Pending); n > 0 {
				lo, hi = sub.Pending[0], sub.Pending[n-1]
			}
			parts[fmt.Sprintf("channel %s sub %d", ch.Name, st.ID)] = fmt.Sprintf(
				"client %q durable %q queue %q last_sent %d pending %d [%d..%d] closed %v %s",
				st.ClientID, st.DurableName, st.QGroup, st.LastSent, len(sub.Pending), lo, hi, st.IsClosed, w.sum())
		}
	}
	return nil
}

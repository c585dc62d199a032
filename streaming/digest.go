package streaming

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
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
	m := s.sm
	m.mu.Lock()
	defer m.mu.Unlock()
	h := sha256.New()
	var num [8]byte
	u64 := func(v uint64) { binary.BigEndian.PutUint64(num[:], v); h.Write(num[:]) }
	str := func(v string) { u64(uint64(len(v))); h.Write([]byte(v)) }
	ids := make([]string, 0, len(m.clients))
	for id := range m.clients {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := m.clients[id]
		str(c.ID)
		str(c.HbInbox)
	}
	chans := make([]*stores.Channel, 0, len(m.chans))
	for _, ch := range m.chans {
		chans = append(chans, ch)
	}
	slices.SortFunc(chans, func(a, b *stores.Channel) int { return cmp.Compare(a.Name, b.Name) })
	var msg stores.Msg
	for _, ch := range chans {
		str(ch.Name)
		u64(ch.ID)
		st := ch.Msgs.State()
		u64(st.First)
		u64(st.Last)
		for seq := st.First; st.Msgs > 0 && seq <= st.Last; seq++ {
			if err := ch.Msgs.Load(seq, &msg); err != nil {
				return "", fmt.Errorf("streaming: digest: channel %q seq %d: %w", ch.Name, seq, err)
			}
			u64(msg.Seq)
			u64(uint64(msg.Time))
			str(msg.Reply)
			str(string(msg.Data))
		}
		if err := digestSubs(ch, u64, str); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestSubs(ch *stores.Channel, u64 func(uint64), str func(string)) error {
	subs, err := ch.Subs.Subs()
	if err != nil {
		return fmt.Errorf("streaming: digest: subscriptions of %q: %w", ch.Name, err)
	}
	slices.SortFunc(subs, func(a, b stores.RecoveredSub) int { return cmp.Compare(a.State.ID, b.State.ID) })
	for _, sub := range subs {
		st := sub.State
		u64(st.ID)
		str(st.ClientID)
		str(st.DurableName)
		str(st.QGroup)
		str(st.Inbox)
		str(st.AckInbox)
		u64(st.LastSent)
		u64(uint64(len(sub.Pending))) // ascending (stores.RecoveredSub)
		for _, p := range sub.Pending {
			u64(p)
		}
		if st.IsClosed {
			u64(1)
		} else {
			u64(0)
		}
	}
	return nil
}

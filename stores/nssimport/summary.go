package nssimport

import (
	"fmt"
	"io"
	"strings"

	"github.com/starling-io/starling/stores"
)

// WriteSummary prints what Import would write: the server identity, the clients, each
// channel with its message count and sequence range, each subscription with its position
// and pending messages, and the notes.
func (src *Source) WriteSummary(w io.Writer) {
	var msgs uint64
	for _, ch := range src.Channels {
		msgs += ch.Msgs
	}
	fmt.Fprintf(w, "nats-streaming-server file store %s\n", src.Dir)
	fmt.Fprintf(w, "cluster ID %q: %d channel(s), %d message(s), %d client(s)\n", src.Info.ClusterID, len(src.Channels), msgs, len(src.Clients))
	for _, c := range src.Clients {
		fmt.Fprintf(w, "client %s (heartbeat inbox %s)\n", c.ID, c.HbInbox)
	}
	for _, ch := range src.Channels {
		seqs := "no message"
		if ch.Msgs > 0 {
			seqs = fmt.Sprintf("first %d last %d", ch.First, ch.Last)
		}
		fmt.Fprintf(w, "channel %s: %d message(s), %s, %d payload bytes, %d subscription(s)\n",
			ch.Name, ch.Msgs, seqs, ch.Bytes, len(ch.Subs))
		for _, s := range ch.Subs {
			fmt.Fprintf(w, "  subscription %d: %s\n", s.State.ID, describeSub(&s))
		}
	}
	for _, n := range src.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// describeSub says who a subscription belongs to, whether it is online, where it is and
// what it has pending.
func describeSub(s *stores.RecoveredSub) string {
	st := s.State
	var b strings.Builder
	b.WriteString(subName(st))
	switch {
	case st.ClientID == "":
		b.WriteString(", no client")
	default:
		fmt.Fprintf(&b, ", client %s", st.ClientID)
	}
	if st.IsClosed {
		b.WriteString(", offline")
	}
	fmt.Fprintf(&b, ", last sent %d, %d pending", st.LastSent, len(s.Pending))
	if len(s.Pending) > 0 {
		fmt.Fprintf(&b, " (%s)", ranges(s.Pending, 4))
	}
	return b.String()
}

// ranges prints ascending sequences as ranges, at most limit of them.
func ranges(seqs []uint64, limit int) string {
	var parts []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if len(parts) == limit {
			parts = append(parts, "…")
			break
		}
		if i == j {
			parts = append(parts, fmt.Sprint(seqs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", seqs[i], seqs[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

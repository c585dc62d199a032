package streaming

import (
	"strconv"
	"unicode/utf8"

	"github.com/starling-io/starling/core/subject"
)

// validClientID: ^[a-zA-Z0-9_-]+$ (spec §4).
func validClientID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// validChannel: non-empty, no leading/trailing '.', no "..", no '/', no wildcards, no
// whitespace (spec §10.1; whitespace would not survive as a NATS subject), and UTF-8: a
// channel name travels in protobuf string fields (MsgProto, the raft snapshot), which
// Marshal refuses otherwise.
func validChannel(name string) bool {
	if name == "" || name[0] == '.' || name[len(name)-1] == '.' || !utf8.ValidString(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '*', '>', '/', ' ', '\t', '\r', '\n', '\f':
			return false
		case '.':
			if name[i+1] == '.' {
				return false
			}
		}
	}
	return true
}

// MaxClientIDLen bounds a client ID: it travels in every heartbeat subject and is kept per
// client and per durable.
const MaxClientIDLen = 256

// validInbox reports whether a client-chosen inbox (delivery or heartbeat) may receive the
// server's messages: a valid literal subject with no control bytes — the in-process
// connection writes it into MSG and route frames, where a space or CR LF would forge
// protocol (audit finding 2) — and none of the server's own subjects: nothing under
// _STAN. (requests, heartbeats, checks) or the discover prefix, nor ack inboxes.
func (s *Server) validInbox(inbox string) bool {
	if len(inbox) > maxInboxLen || !subject.ValidPublish(inbox) {
		return false
	}
	return !under(inbox, "_STAN") && !under(inbox, s.opts.DiscoverPrefix) && !under(inbox, s.ackPrefix)
}

// maxInboxLen bounds an inbox (subjects travel in every delivery's control line).
const maxInboxLen = 1024

// under reports whether subj is prefix or lies below it.
func under(subj, prefix string) bool {
	return subj == prefix || (len(subj) > len(prefix) && subj[len(prefix)] == '.' && subj[:len(prefix)] == prefix)
}

// logID shortens a client-chosen ID for a log line.
func logID(id string) string {
	if len(id) > 64 {
		return id[:64] + "…"
	}
	return id
}

// quote shortens and quotes a client-chosen string for a log line.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

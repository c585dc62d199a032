package stores

// Msg is one stored message of a channel. The caller assigns Seq and Time (unix ns). When
// Msg is the destination of Load, Data is caller-owned memory that Load overwrites.
type Msg struct {
	Seq   uint64
	Time  int64 // unix nanoseconds
	Reply string
	Data  []byte
}

// MsgOverhead is the fixed per-message part of MsgSize, standing for the sequence, time
// and framing of a stored message.
const MsgOverhead = 16

// MsgSize is what one message counts against MaxBytes and in ChannelState.Bytes:
// len(Data) + len(Reply) + len(channel) + MsgOverhead. (Two 2-byte messages on channel
// "foo" count 42 bytes, as in the reference server.)
func MsgSize(channel string, m *Msg) uint64 {
	return uint64(len(m.Data) + len(m.Reply) + len(channel) + MsgOverhead)
}

// ChannelState summarises a channel's messages. Msgs == 0 exactly when First > Last: a
// fresh channel is {First: 1, Last: 0}. Removal by limits advances First; Last never goes
// back, so sequences are never reused.
type ChannelState struct {
	First uint64 // sequence of the oldest stored message (Last+1 when empty)
	Last  uint64 // sequence of the newest message ever appended (0 if none)
	Msgs  uint64 // number of stored messages
	Bytes uint64 // sum of MsgSize over stored messages
}

// SubState is the stored state of one subscription (a queue group member, a durable,
// an offline durable or a durable queue group's shadow). The caller chooses ID, unique
// within the channel.
type SubState struct {
	ID          uint64
	ClientID    string
	QGroup      string // "" for non-queue; "durable:queue" for a durable queue group
	Inbox       string // delivery inbox
	AckInbox    string
	DurableName string
	MaxInFlight int32
	AckWaitSecs int32
	LastSent    uint64 // highest sequence sent; Record raises it
	IsDurable   bool
	IsClosed    bool   // offline durable / durable queue shadow
	User        string // the authenticated user that owns it ("" without authentication)
}

// SubEvent is one sent or acknowledged sequence of a subscription, recorded in batches
// by SubStore.Record.
type SubEvent struct {
	SubID uint64
	Seq   uint64
	Acked bool // false: sent (now pending); true: acknowledged (no longer pending)
}

// RecoveredSub is a subscription with its pending set: sequences sent and not yet
// acknowledged, ascending.
type RecoveredSub struct {
	State   SubState
	Pending []uint64
}

// ClientInfo is a registered streaming client.
type ClientInfo struct {
	ID           string
	HbInbox      string
	ConnID       []byte
	Protocol     int32
	PingInterval int32
	PingMaxOut   int32
	User         string // the authenticated user that registered it ("" without authentication)
}

// ServerInfo is the server identity persisted on the first start: the cluster ID and the
// request subjects handed to clients, so that they stay the same across restarts.
type ServerInfo struct {
	ClusterID   string
	Discovery   string
	Publish     string
	Subscribe   string
	Unsubscribe string
	Close       string
	SubClose    string
	NodeID      string
}

// Channel is one channel as held by a Store: its messages and its subscriptions. The
// Store owns it; CreateChannel and Recover return the same *Channel for the same channel.
type Channel struct {
	Name string
	ID   uint64 // chosen by the caller at CreateChannel
	Msgs MsgStore
	Subs SubStore
}

// RecoveredState is what a Store holds: the server identity, the clients, and every
// channel with its subscriptions.
type RecoveredState struct {
	Info     ServerInfo
	Clients  []ClientInfo        // by ID
	Channels []*RecoveredChannel // by name
	// Deleted holds the last sequence of every deleted channel the store remembers (one
	// created again continues after it), by name.
	Deleted map[string]uint64
	// Clean: the previous run ended with Close, so every change it made is here. False
	// after a crash: then the last changes made before it (those never synced) are not.
	Clean bool
}

// RecoveredChannel is one channel of a RecoveredState with its subscriptions (by ID).
type RecoveredChannel struct {
	Channel *Channel
	Subs    []RecoveredSub
}

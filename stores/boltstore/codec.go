package boltstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/storepb"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/seqset"
)

// Bucket and key names.
const (
	bktMeta    = "meta"
	bktClients = "clients"
	bktChans   = "chans"
	bktTombs   = "tombs"
	keyInfo    = "info"
	keyClean   = "clean" // in meta: written by Close's last transaction, removed by Open
	preMsgs    = "m."
	preSubs    = "s."
	prePending = "p."
)

// msgHeader is the stored header of a message value: time (8) and reply length (4).
const msgHeader = 12

// recHeader is the length (4) and the checksum (4) that precede a message value in a
// block stored under sumKey.
const recHeader = 8

// sumKey is the one key of a block's bucket: its value is the block, each record checked
// by a CRC-32C. oldKey holds a block of earlier versions, whose records have no checksum
// (length, then the value): still read, never written.
var (
	sumKey = []byte{'c'}
	oldKey = []byte{'b'}
)

// crcTable is CRC-32C (Castagnoli), as the file store's records use.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// msgSum is the checksum of message seq's stored value v: CRC-32C of v then seq (8 bytes,
// big-endian), so that a record read for another sequence fails it too. seq is folded in
// byte by byte: a [8]byte handed to crc32 would escape to the heap. appendRecord computes
// the same in one pass.
func msgSum(seq uint64, v []byte) uint32 {
	crc := ^crc32.Update(0, crcTable, v)
	for i := 56; i >= 0; i -= 8 {
		crc = crcTable[byte(crc)^byte(seq>>i)] ^ crc>>8
	}
	return ^crc
}

// appendRecord appends m as a block record to buf: the value's length, its checksum
// (msgSum), then the value.
func appendRecord(buf []byte, m *stores.Msg) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(msgHeader+len(m.Reply)+len(m.Data)))
	at := len(buf)
	buf = appendMsg(append(buf, 0, 0, 0, 0), m)
	end := len(buf)
	// The sequence goes after the value for the checksum only: one crc32 call (hardware),
	// where folding it in by hand cost as much as the rest of a small record's sum.
	buf = binary.BigEndian.AppendUint64(buf, m.Seq)
	binary.BigEndian.PutUint32(buf[at:], crc32.Checksum(buf[at+4:], crcTable))
	return buf[:end]
}

// blockOf returns the block held by a block's bucket, and whether its records carry a
// checksum (stored under sumKey).
func blockOf(bb *bolt.Bucket) (blk []byte, sums bool) {
	if bb == nil {
		return nil, false
	}
	if blk = bb.Get(sumKey); blk != nil {
		return blk, true
	}
	return bb.Get(oldKey), false
}

// record returns the value of the block record at off, its checksum (sums: the block's
// records carry one), and the offset of the next record.
func record(blk []byte, off uint32, sums bool) (v []byte, sum, next uint32, ok bool) {
	hdr := uint64(4)
	if sums {
		hdr = recHeader
	}
	if uint64(off)+hdr > uint64(len(blk)) {
		return nil, 0, 0, false
	}
	n := binary.BigEndian.Uint32(blk[off:])
	if sums {
		sum = binary.BigEndian.Uint32(blk[off+4:])
	}
	start := uint64(off) + hdr
	if uint64(n) > uint64(len(blk))-start {
		return nil, 0, 0, false
	}
	return blk[start : start+uint64(n)], sum, uint32(start + uint64(n)), true
}

// chanMeta is a channel's record in chans: its ID, its last sequence, and the sequence
// through which messages still held in its first block are deleted (limits cut blocks
// only whole). A record of the per-key layout has no third field.
func chanMeta(v []byte) (id, last, dead uint64, err error) {
	if len(v) != 16 && len(v) != 24 {
		return 0, 0, 0, fmt.Errorf("%w: channel metadata of %d bytes", ErrCorrupt, len(v))
	}
	id, last = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	if len(v) == 24 {
		dead = binary.BigEndian.Uint64(v[16:])
	}
	if dead > last {
		// A commit records dead at most the last message it deletes, and Last at least
		// that. Taken as it is, the messages published up to dead would be skipped as
		// deleted at the next Open.
		return 0, 0, 0, fmt.Errorf("%w: channel metadata deletes messages through %d, past its last %d", ErrCorrupt, dead, last)
	}
	return id, last, dead, nil
}

// appendMsg appends the stored value of m to buf.
func appendMsg(buf []byte, m *stores.Msg) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(m.Time))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(m.Reply)))
	buf = append(buf, m.Reply...)
	return append(buf, m.Data...)
}

// decodeMsg copies the stored value v of message seq into into.
func decodeMsg(seq uint64, v []byte, into *stores.Msg) error {
	if len(v) < msgHeader {
		return fmt.Errorf("boltstore: message %d: value of %d bytes is corrupt", seq, len(v))
	}
	rl := binary.BigEndian.Uint32(v[8:12])
	if uint64(rl) > uint64(len(v)-msgHeader) {
		return fmt.Errorf("boltstore: message %d: reply length %d is corrupt", seq, rl)
	}
	into.Seq = seq
	into.Time = int64(binary.BigEndian.Uint64(v))
	reply := v[msgHeader : msgHeader+rl]
	if into.Reply != string(reply) { // compared without allocating
		into.Reply = string(reply)
	}
	into.Data = append(into.Data[:0], v[msgHeader+rl:]...)
	return nil
}

// msgTime returns the time and payload size (reply + data) of a stored value.
func msgTime(v []byte) (int64, uint32, bool) {
	if len(v) < msgHeader {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), uint32(len(v) - msgHeader), true
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func encodeInfo(i *stores.ServerInfo) ([]byte, error) {
	return proto.Marshal(&storepb.ServerInfo{ClusterID: i.ClusterID, Discovery: i.Discovery,
		Publish: i.Publish, Subscribe: i.Subscribe, Unsubscribe: i.Unsubscribe, Close: i.Close,
		SubClose: i.SubClose, NodeID: i.NodeID})
}

func decodeInfo(v []byte) (stores.ServerInfo, error) {
	var p storepb.ServerInfo
	if err := proto.Unmarshal(v, &p); err != nil {
		return stores.ServerInfo{}, fmt.Errorf("boltstore: server info: %w", err)
	}
	return stores.ServerInfo{ClusterID: p.ClusterID, Discovery: p.Discovery, Publish: p.Publish,
		Subscribe: p.Subscribe, Unsubscribe: p.Unsubscribe, Close: p.Close, SubClose: p.SubClose,
		NodeID: p.NodeID}, nil
}

// checkClient refuses a client whose record proto3 cannot encode.
func checkClient(c *stores.ClientInfo) error {
	if !utf8.ValidString(c.ID) || !utf8.ValidString(c.HbInbox) || !utf8.ValidString(c.User) {
		return fmt.Errorf("boltstore: client %q: %w", c.ID, ErrNotUTF8)
	}
	return nil
}

// setClientPB sets p to c, reusing p (the owner's scratch message: no allocation).
func setClientPB(p *storepb.ClientInfo, c *stores.ClientInfo) {
	proto.Reset(p)
	p.ID, p.HbInbox, p.ConnID, p.Protocol = c.ID, c.HbInbox, c.ConnID, c.Protocol
	p.PingInterval, p.PingMaxOut, p.User = c.PingInterval, c.PingMaxOut, c.User
}

func decodeClient(v []byte) (stores.ClientInfo, error) {
	var p storepb.ClientInfo
	if err := proto.Unmarshal(v, &p); err != nil {
		return stores.ClientInfo{}, fmt.Errorf("boltstore: client: %w", err)
	}
	return stores.ClientInfo{ID: p.ID, HbInbox: p.HbInbox, ConnID: p.ConnID, Protocol: p.Protocol,
		PingInterval: p.PingInterval, PingMaxOut: p.PingMaxOut, User: p.User}, nil
}

// checkSub refuses a subscription whose record proto3 cannot encode.
func checkSub(st *stores.SubState) error {
	for _, f := range [...]string{st.ClientID, st.QGroup, st.Inbox, st.AckInbox, st.DurableName, st.User} {
		if !utf8.ValidString(f) {
			return fmt.Errorf("boltstore: subscription %d: %w", st.ID, ErrNotUTF8)
		}
	}
	return nil
}

// setSubPB sets p to st, reusing p (the owner's scratch message: no allocation).
func setSubPB(p *storepb.SubState, st *stores.SubState) {
	pend := p.Pending[:0]
	proto.Reset(p)
	p.Pending = pend
	p.ID, p.ClientID, p.QGroup, p.Inbox, p.AckInbox = st.ID, st.ClientID, st.QGroup, st.Inbox, st.AckInbox
	p.MaxInFlight, p.AckWaitInSecs, p.DurableName, p.LastSent = st.MaxInFlight, st.AckWaitSecs, st.DurableName, st.LastSent
	p.IsDurable, p.IsClosed, p.User = st.IsDurable, st.IsClosed, st.User
}

func decodeSub(v []byte, pending *seqset.Set) (stores.SubState, error) {
	var p storepb.SubState
	if err := proto.Unmarshal(v, &p); err != nil {
		return stores.SubState{}, fmt.Errorf("boltstore: subscription: %w", err)
	}
	var seq uint64
	for _, d := range p.Pending { // inline pending set (substore.go): distances
		seq += d
		pending.Add(seq)
	}
	return stores.SubState{ID: p.ID, ClientID: p.ClientID, QGroup: p.QGroup, Inbox: p.Inbox,
		AckInbox: p.AckInbox, MaxInFlight: p.MaxInFlight, AckWaitSecs: p.AckWaitInSecs,
		DurableName: p.DurableName, LastSent: p.LastSent, IsDurable: p.IsDurable,
		IsClosed: p.IsClosed, User: p.User}, nil
}

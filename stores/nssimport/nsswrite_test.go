package nssimport

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes nss file stores for the tests, the way nats-streaming-server v0.25 does
// (FORMAT.md), so that every case (damage, padding, slices, record kinds) is under control.

func appendStr(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func encMsg(m nssMsg) []byte {
	var b []byte
	b = appendVarint(b, 1, m.Seq)
	b = appendStr(b, 2, string(m.Subject))
	b = appendStr(b, 3, string(m.Reply))
	b = appendStr(b, 4, string(m.Data))
	b = appendVarint(b, 5, uint64(m.Time))
	return b
}

func encSub(s nssSub) []byte {
	var b []byte
	b = appendVarint(b, 1, s.ID)
	b = appendStr(b, 2, s.ClientID)
	b = appendStr(b, 3, s.QGroup)
	b = appendStr(b, 4, s.Inbox)
	b = appendStr(b, 5, s.AckInbox)
	b = appendVarint(b, 6, uint64(s.MaxInFlight))
	b = appendVarint(b, 7, uint64(s.AckWaitSecs))
	b = appendStr(b, 8, s.DurableName)
	b = appendVarint(b, 9, s.LastSent)
	if s.IsDurable {
		b = appendVarint(b, 10, 1)
	}
	if s.IsClosed {
		b = appendVarint(b, 11, 1)
	}
	return b
}

func encIDSeq(id, seq uint64) []byte { return appendVarint(appendVarint(nil, 1, id), 2, seq) }

func encClient(c nssClient) []byte {
	var b []byte
	b = appendStr(b, 1, c.ID)
	b = appendStr(b, 2, c.HbInbox)
	b = appendStr(b, 3, string(c.ConnID))
	b = appendVarint(b, 4, uint64(c.Protocol))
	b = appendVarint(b, 5, uint64(c.PingInterval))
	b = appendVarint(b, 6, uint64(c.PingMaxOut))
	return b
}

func encServerInfo(i nssServerInfo) []byte {
	var b []byte
	for n, s := range []string{i.ClusterID, i.Discovery, i.Publish, i.Subscribe, i.Unsubscribe, i.Close, i.SubClose, i.AcksSubs, i.NodeID} {
		b = appendStr(b, protowire.Number(n+1), s)
	}
	return b
}

// rec frames a payload: typ 0 for untyped files.
func rec(typ byte, payload []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(typ)<<24|uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:], crc32.ChecksumIEEE(payload))
	return append(h[:], payload...)
}

func versioned(parts ...[]byte) []byte {
	b := []byte{fileVersion, 0, 0, 0}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSlice writes msgs.N.dat (and msgs.N.idx if withIdx) of a channel directory and
// returns the offset of each message's record in the data file.
func writeSlice(t testing.TB, chDir string, n int, msgs []nssMsg, withIdx bool) []int64 {
	t.Helper()
	dat := versioned()
	idx := versioned()
	offs := make([]int64, len(msgs))
	for i, m := range msgs {
		payload := encMsg(m)
		offs[i] = int64(len(dat))
		var e [idxEntrySize]byte
		le := binary.LittleEndian
		le.PutUint64(e[0:], m.Seq)
		le.PutUint64(e[8:], uint64(len(dat)))
		le.PutUint64(e[16:], uint64(m.Time))
		le.PutUint32(e[24:], uint32(len(payload)))
		le.PutUint32(e[28:], crc32.ChecksumIEEE(e[:28]))
		idx = append(idx, e[:]...)
		dat = append(dat, rec(0, payload)...)
	}
	writeFile(t, filepath.Join(chDir, fmt.Sprintf("msgs.%d.dat", n)), dat)
	if withIdx {
		writeFile(t, filepath.Join(chDir, fmt.Sprintf("msgs.%d.idx", n)), idx)
	}
	return offs
}

// msgRange returns messages from..to of a channel, with times 1000 ns apart and data of
// varying sizes.
func msgRange(channel string, from, to uint64) []nssMsg {
	var out []nssMsg
	for s := from; s <= to; s++ {
		data := make([]byte, int(s%7)*13)
		for i := range data {
			data[i] = byte(s) + byte(i)
		}
		m := nssMsg{Seq: s, Subject: []byte(channel), Data: data, Time: 1_700_000_000_000_000_000 + int64(s)*1000}
		if s%5 == 0 {
			m.Reply = []byte(fmt.Sprintf("_INBOX.r%d", s))
		}
		out = append(out, m)
	}
	return out
}

// sampleStore writes a small nss store: channel "orders" (messages 1-30 in two slices with
// indexes, a durable with pending messages, a closed durable, a durable queue shadow, a
// deleted subscription), channel "events" (messages 5-9, no index file; a plain
// subscription), an empty channel "empty", two clients (a third deleted).
func sampleStore(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, serverFile), versioned(rec(0, encServerInfo(nssServerInfo{ClusterID: "test-cluster",
		Discovery: "_STAN.discover.test-cluster", Publish: "_STAN.pub.abc", Subscribe: "_STAN.sub.abc", Unsubscribe: "_STAN.unsub.abc",
		Close: "_STAN.close.abc", SubClose: "_STAN.subclose.abc", AcksSubs: "_STAN.subacks.abc"}))))
	writeFile(t, filepath.Join(dir, clientsFile), versioned(
		rec(recAddClient, encClient(nssClient{ID: "alice", HbInbox: "_INBOX.hb1", ConnID: []byte("c1"), Protocol: 1, PingInterval: 5, PingMaxOut: 88})),
		rec(recAddClient, encClient(nssClient{ID: "gone", HbInbox: "_INBOX.hb2"})),
		rec(recAddClient, encClient(nssClient{ID: "bob", HbInbox: "_INBOX.hb3", ConnID: []byte("c3")})),
		rec(recDelClient, appendStr(nil, 1, "gone")),
	))
	orders := filepath.Join(dir, "orders")
	all := msgRange("orders", 1, 30)
	writeSlice(t, orders, 1, all[:12], true)
	writeSlice(t, orders, 2, all[12:], true)
	writeFile(t, filepath.Join(orders, subsFile), versioned(
		rec(recSubNew, encSub(nssSub{ID: 1, ClientID: "alice", Inbox: "_INBOX.a", AckInbox: "_INBOX.ack1", MaxInFlight: 10, AckWaitSecs: 30, DurableName: "dur", IsDurable: true})),
		rec(recSubMsg, encIDSeq(1, 1)), rec(recSubMsg, encIDSeq(1, 2)), rec(recSubMsg, encIDSeq(1, 3)),
		rec(recSubAck, encIDSeq(1, 1)),
		rec(recSubMsg, encIDSeq(1, 4)),
		rec(recSubAck, encIDSeq(1, 3)),
		rec(recSubNew, encSub(nssSub{ID: 2, ClientID: "carol", Inbox: "_INBOX.c", AckInbox: "_INBOX.ack2", MaxInFlight: 1, AckWaitSecs: 5, DurableName: "closed", IsDurable: true})),
		rec(recSubMsg, encIDSeq(2, 20)),
		rec(recSubUpdate, encSub(nssSub{ID: 2, ClientID: "carol", Inbox: "_INBOX.c", AckInbox: "_INBOX.ack2", MaxInFlight: 1, AckWaitSecs: 5, DurableName: "closed", IsDurable: true, IsClosed: true, LastSent: 20})),
		rec(recSubNew, encSub(nssSub{ID: 3, ClientID: "alice", Inbox: "_INBOX.x", AckInbox: "_INBOX.ack3", MaxInFlight: 5, AckWaitSecs: 30})),
		rec(recSubDel, appendVarint(nil, 1, 3)),
		rec(recSubNew, encSub(nssSub{ID: 4, QGroup: "qd:workers", Inbox: "_INBOX.q", AckInbox: "_INBOX.ack4", MaxInFlight: 3, AckWaitSecs: 30, IsDurable: true, LastSent: 7})),
		rec(recSubMsg, encIDSeq(4, 7)),
		rec(recSubMsg, encIDSeq(99, 7)), // unknown subscription: ignored
	))
	events := filepath.Join(dir, "events")
	writeSlice(t, events, 1, msgRange("events", 5, 9), false)
	writeFile(t, filepath.Join(events, subsFile), versioned(
		rec(recSubNew, encSub(nssSub{ID: 1, ClientID: "bob", Inbox: "_INBOX.b", AckInbox: "_INBOX.ack5", MaxInFlight: 100, AckWaitSecs: 30, LastSent: 9})),
	))
	writeFile(t, filepath.Join(dir, "empty", subsFile), versioned())
	return dir
}

func crcIEEE() *crc32.Table { return crc32.IEEETable }

// fixIdxCRC recomputes an index entry's checksum after a test changed it.
func fixIdxCRC(e []byte) {
	binary.LittleEndian.PutUint32(e[28:], crc32.ChecksumIEEE(e[:28]))
}

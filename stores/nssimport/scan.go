package nssimport

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/starling-io/starling/stores"
)

// File names of an nss file store.
const (
	serverFile  = "server.dat"
	clientsFile = "clients.dat"
	subsFile    = "subs.dat"
	msgsPrefix  = "msgs."
	datSuffix   = ".dat"
	idxSuffix   = ".idx"
)

// Record types of clients.dat and subs.dat.
const (
	recAddClient = 1
	recDelClient = 2

	recSubNew    = 1
	recSubUpdate = 2
	recSubDel    = 3
	recSubAck    = 4
	recSubMsg    = 5
)

// Options tune Scan.
type Options struct {
	// CRCPolynomial is the CRC-32 polynomial nss ran with (its --file_crc_poly); 0 means
	// IEEE, nss's default.
	CRCPolynomial uint32
	// User is recorded as the owner of every imported client and subscription: the user
	// those clients authenticate as on Starling (stores.ClientInfo.User). "" for a server
	// without authentication, as nss had no such notion.
	User string
	// SkipClients leaves the client registrations out (clients.dat is still checked). On
	// start Starling then takes every durable as offline and drops the plain subscriptions,
	// and a connection that outlived nss is told its client is unknown, so it reconnects
	// with a new session instead of acknowledging on an ack inbox from nss.
	SkipClients bool
}

// Source is an nss file store, read and checked by Scan: everything Import writes except
// the messages, which it reads again from the files.
type Source struct {
	Dir      string
	Info     stores.ServerInfo // as nss stored it (Import gives it a new NodeID)
	AcksSubs string            // nss's ack subscriptions prefix (not used by Starling)
	Clients  []stores.ClientInfo
	Channels []*Channel
	// Notes say what the import tolerates, adjusts or leaves out, one line each.
	Notes []string

	table *crc32.Table
}

// Channel is one channel of the source.
type Channel struct {
	Name        string
	First, Last uint64 // First > Last when it holds no message
	Msgs        uint64
	Bytes       uint64 // payload bytes (data and reply)
	Subs        []stores.RecoveredSub
	slices      []*slice
}

// Scan reads the whole nss file store in dir, verifying every record (checksums, framing,
// payloads, sequences), and returns what Import would write. It writes nothing. Damage is
// a *FormatError (errors.Is ErrDamaged) naming the file and the offset.
func Scan(dir string, opts Options) (*Source, error) {
	src := &Source{Dir: dir, table: crc32.IEEETable}
	if opts.CRCPolynomial != 0 && opts.CRCPolynomial != crc32.IEEE {
		src.table = crc32.MakeTable(opts.CRCPolynomial)
	}
	info, err := readServerInfo(filepath.Join(dir, serverFile), src.table)
	if err != nil {
		return nil, err
	}
	src.Info = stores.ServerInfo{ClusterID: info.ClusterID, Discovery: info.Discovery, Publish: info.Publish,
		Subscribe: info.Subscribe, Unsubscribe: info.Unsubscribe, Close: info.Close, SubClose: info.SubClose,
		NodeID: info.NodeID}
	src.AcksSubs = info.AcksSubs
	if src.Clients, err = readClients(filepath.Join(dir, clientsFile), src.table, opts.User); err != nil {
		return nil, err
	}
	if opts.SkipClients && len(src.Clients) > 0 {
		src.note("%d client registration(s) left out: their durables will be offline, their other subscriptions dropped", len(src.Clients))
		src.Clients = nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries { // sorted by name
		if !e.IsDir() {
			continue
		}
		ch, err := src.scanChannel(e.Name(), opts.User)
		if err != nil {
			return nil, err
		}
		src.Channels = append(src.Channels, ch)
	}
	return src, nil
}

func (src *Source) note(format string, a ...any) {
	src.Notes = append(src.Notes, fmt.Sprintf(format, a...))
}

// readServerInfo reads server.dat: the version, one untyped ServerInfo record, nothing else.
func readServerInfo(path string, table *crc32.Table) (nssServerInfo, error) {
	f, size, err := openSized(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nssServerInfo{}, fmt.Errorf("%w: %s is missing", ErrNotNSSStore, path)
	}
	if err != nil {
		return nssServerInfo{}, err
	}
	defer f.Close()
	rr, err := newRecordReader(path, newBufReader(f), size, false, table)
	if err != nil {
		return nssServerInfo{}, err
	}
	_, payload, at, err := rr.next()
	if err == io.EOF {
		return nssServerInfo{}, fmt.Errorf("%w: %s holds no server information (the store was never used)", ErrNotNSSStore, path)
	}
	if err != nil {
		return nssServerInfo{}, err
	}
	info, err := decodeServerInfo(payload)
	if err != nil {
		return nssServerInfo{}, damaged(path, at, "server record does not decode: %v", err)
	}
	if rr.off != size {
		return nssServerInfo{}, damaged(path, rr.off, "%d unexpected bytes after the server record", size-rr.off)
	}
	if info.ClusterID == "" {
		return nssServerInfo{}, damaged(path, at, "server record has no cluster ID")
	}
	return info, nil
}

// readClients replays clients.dat (add and delete records) into the registered clients,
// by ID. A missing file means no client.
func readClients(path string, table *crc32.Table, user string) ([]stores.ClientInfo, error) {
	f, size, err := openSized(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rr, err := newRecordReader(path, newBufReader(f), size, true, table)
	if err != nil {
		return nil, err
	}
	clients := map[string]nssClient{}
	for {
		typ, payload, at, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch typ {
		case recAddClient:
			c, err := decodeClient(payload)
			if err != nil {
				return nil, damaged(path, at, "client record does not decode: %v", err)
			}
			if c.ID == "" {
				return nil, damaged(path, at, "client record without an ID")
			}
			clients[c.ID] = c
		case recDelClient:
			id, err := decodeClientDelete(payload)
			if err != nil {
				return nil, damaged(path, at, "client delete record does not decode: %v", err)
			}
			delete(clients, id)
		default:
			return nil, damaged(path, at, "unknown client record type %d", typ)
		}
	}
	out := make([]stores.ClientInfo, 0, len(clients))
	for _, c := range clients {
		out = append(out, stores.ClientInfo{ID: c.ID, HbInbox: c.HbInbox, ConnID: c.ConnID, Protocol: c.Protocol,
			PingInterval: c.PingInterval, PingMaxOut: c.PingMaxOut, User: user})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// scanChannel reads one channel directory: its message slices, then subs.dat.
func (src *Source) scanChannel(name, user string) (*Channel, error) {
	dir := filepath.Join(src.Dir, name)
	if err := checkChannelDir(dir, name); err != nil {
		return nil, err
	}
	ch := &Channel{Name: name, First: 1}
	var err error
	if ch.slices, err = listSlices(dir); err != nil {
		return nil, err
	}
	src.checkIndexes(name, ch.slices)
	src.setSliceEnds(ch.slices)
	if err := src.readChannelMsgs(ch); err != nil {
		return nil, err
	}
	if ch.Msgs == 0 {
		ch.First = ch.Last + 1
	}
	subs, err := src.readSubs(filepath.Join(dir, subsFile), ch, user)
	if err != nil {
		return nil, err
	}
	ch.Subs = subs
	return ch, nil
}

// checkChannelDir checks that a channel directory's name is a channel name both nss and
// Starling accept.
func checkChannelDir(dir, name string) error {
	if !validChannel(name) {
		return fmt.Errorf("%s: directory name %q is not a channel name nats-streaming-server accepts", dir, name)
	}
	if !utf8.ValidString(name) {
		// nss took any bytes; Starling's channel names travel in protobuf string fields
		// (MsgProto, raft snapshots), which must be UTF-8: no client could read the channel.
		return fmt.Errorf("%s: channel name %q is not UTF-8, which Starling requires (stan.go clients cannot subscribe to it): rename or remove the directory, then import", dir, name)
	}
	return nil
}

// listSlices finds a channel directory's message files (msgs.N.dat, with msgs.N.idx when
// there is one), in slice order.
func listSlices(dir string) ([]*slice, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*slice
	for _, e := range entries {
		fn := e.Name()
		if e.IsDir() || !strings.HasPrefix(fn, msgsPrefix) || !strings.HasSuffix(fn, datSuffix) {
			continue
		}
		num, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(fn, msgsPrefix), datSuffix), 10, 64)
		if err != nil || num < 0 {
			return nil, fmt.Errorf("%w: %s: message file with an invalid name (want msgs.N.dat)", ErrDamaged, filepath.Join(dir, fn))
		}
		sl := &slice{num: num, dat: filepath.Join(dir, fn)}
		idx := filepath.Join(dir, msgsPrefix+strconv.FormatInt(num, 10)+idxSuffix)
		if _, err := os.Stat(idx); err == nil {
			sl.idx = idx
		}
		out = append(out, sl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].num < out[j].num })
	return out, nil
}

// checkIndexes decides for each slice of channel name whether its index can be used, with
// a note when not.
func (src *Source) checkIndexes(name string, slices []*slice) {
	for _, sl := range slices {
		var why string
		sl.useIndex, why = checkIndex(sl, src.table)
		if why != "" {
			src.note("%s: index unusable (%s): messages read from %s instead, as nats-streaming-server does", name, why, filepath.Base(sl.dat))
		}
	}
}

// setSliceEnds sets each slice's before. Records past a slice's index that the next slice
// wrote again (nss went on after ignoring them) are stale: stop before the next slice's
// first sequence.
func (src *Source) setSliceEnds(slices []*slice) {
	var next uint64
	for i := len(slices) - 1; i >= 0; i-- {
		slices[i].before = next
		if f := firstSeq(slices[i], src.table); f != 0 {
			next = f
		}
	}
}

// readChannelMsgs reads every message of ch's slices in order, checking sequences and times,
// and counts them into each slice and ch; it notes raised times and a channel whose messages
// all look encrypted.
func (src *Source) readChannelMsgs(ch *Channel) error {
	var (
		seq                 seqCheck
		nonEmpty, encrypted uint64
	)
	for _, sl := range ch.slices {
		err := readSlice(sl, src.table, func(s string) { src.note("%s", s) }, func(m *nssMsg, file string, at int64) error {
			if _, err := seq.next(m, file, at); err != nil {
				return err
			}
			if sl.msgs == 0 {
				sl.first = m.Seq
			}
			sl.last = m.Seq
			sl.msgs++
			ch.Bytes += uint64(len(m.Data) + len(m.Reply))
			if len(m.Data) > 0 {
				nonEmpty++
				if looksEncrypted(m.Data) {
					encrypted++
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if sl.msgs > 0 {
			if ch.Msgs == 0 {
				ch.First = sl.first
			}
			ch.Last, ch.Msgs = sl.last, ch.Msgs+sl.msgs
		}
	}
	if seq.raised > 0 {
		src.note("%s: %d message time(s) earlier than the message before raised to it (Starling's store keeps times in order)", ch.Name, seq.raised)
	}
	if nonEmpty > 0 && encrypted == nonEmpty {
		src.note("%s: every message looks encrypted (nats-streaming-server --encrypt): the import copies the data as stored, and Starling does not decrypt it", ch.Name)
	}
	return nil
}

// seqCheck follows a channel's messages across its slices: sequences must follow each other
// with no gap (Starling's store cannot hold a gap), times must not go back (they are
// raised to the previous one, and counted).
type seqCheck struct {
	prevSeq  uint64
	prevTime int64
	raised   int
}

// next checks m and returns its time, raised if it went back.
func (c *seqCheck) next(m *nssMsg, file string, at int64) (int64, error) {
	switch {
	case m.Seq == 0:
		return 0, damaged(file, at, "message with sequence 0")
	case c.prevSeq != 0 && m.Seq <= c.prevSeq:
		return 0, damaged(file, at, "sequence %d after %d: sequences go back", m.Seq, c.prevSeq)
	case c.prevSeq != 0 && m.Seq != c.prevSeq+1:
		return 0, damaged(file, at, "sequence %d after %d: messages %d to %d are missing (a gap Starling's store cannot hold)",
			m.Seq, c.prevSeq, c.prevSeq+1, m.Seq-1)
	}
	t := m.Time
	if c.prevSeq != 0 && t < c.prevTime {
		t = c.prevTime
		c.raised++
	}
	c.prevSeq, c.prevTime = m.Seq, t
	return t, nil
}

// looksEncrypted reports whether data has the shape of nss's encryption at rest: a cipher
// code (1 AES-GCM, 2 ChaCha20-Poly1305), a 12-byte nonce, then the ciphertext with its
// 16-byte tag. Only a hint: any payload may look like that.
func looksEncrypted(data []byte) bool {
	return len(data) >= 1+12+16 && (data[0] == 1 || data[0] == 2)
}

// readSubs replays a channel's subs.dat as nss does on recovery: a new record (re)creates a
// subscription with no pending message, an update replaces its state and keeps its pending
// set, a delete removes it, a msg record adds a pending sequence (raising LastSent), an ack
// removes one. Pending sequences outside the channel's messages are dropped and LastSent is
// lowered to the channel's last sequence, with a note.
func (src *Source) readSubs(path string, ch *Channel, user string) ([]stores.RecoveredSub, error) {
	f, size, err := openSized(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rr, err := newRecordReader(path, newBufReader(f), size, true, src.table)
	if err != nil {
		return nil, err
	}
	subs, err := src.replaySubs(path, rr)
	if err != nil {
		return nil, err
	}
	return src.recoveredSubs(ch, subs, user), nil
}

// replayedSub is a subscription as the records of subs.dat so far leave it.
type replayedSub struct {
	st      nssSub
	pending map[uint64]struct{}
}

// replaySubs replays every record of subs.dat, noting zero padding at its end.
func (src *Source) replaySubs(path string, rr *recordReader) (map[uint64]*replayedSub, error) {
	subs := map[uint64]*replayedSub{}
	for {
		typ, payload, at, err := rr.next()
		if err == io.EOF {
			if rr.padding > 0 {
				src.note("%s: zero padding from offset %d to the end ignored (nss cuts it too)", path, rr.padding)
			}
			return subs, nil
		}
		if err != nil {
			return nil, err
		}
		if err := replaySubRecord(subs, typ, payload, path, at); err != nil {
			return nil, err
		}
	}
}

// replaySubRecord replays one record of subs.dat (at offset at of path) into subs.
func replaySubRecord(subs map[uint64]*replayedSub, typ byte, payload []byte, path string, at int64) error {
	switch typ {
	case recSubNew, recSubUpdate:
		st, err := decodeSub(payload)
		if err != nil {
			return damaged(path, at, "subscription record does not decode: %v", err)
		}
		if st.ID == 0 {
			return damaged(path, at, "subscription record with ID 0")
		}
		if s := subs[st.ID]; s != nil && typ == recSubUpdate {
			s.st = st
		} else {
			subs[st.ID] = &replayedSub{st: st, pending: map[uint64]struct{}{}}
		}
	case recSubDel:
		id, _, err := decodeIDSeq(payload)
		if err != nil {
			return damaged(path, at, "subscription delete record does not decode: %v", err)
		}
		delete(subs, id)
	case recSubMsg, recSubAck:
		id, seq, err := decodeIDSeq(payload)
		if err != nil {
			return damaged(path, at, "subscription update record does not decode: %v", err)
		}
		s := subs[id]
		if s == nil {
			return nil
		}
		if typ == recSubAck {
			delete(s.pending, seq)
			return nil
		}
		s.pending[seq] = struct{}{}
		s.st.LastSent = max(s.st.LastSent, seq)
	default:
		return damaged(path, at, "unknown subscription record type %d", typ)
	}
	return nil
}

// recoveredSubs converts the replayed subscriptions of ch, by ID, dropping pending
// sequences ch no longer holds and lowering LastSent to ch.Last, with a note for each.
func (src *Source) recoveredSubs(ch *Channel, subs map[uint64]*replayedSub, user string) []stores.RecoveredSub {
	out := make([]stores.RecoveredSub, 0, len(subs))
	for _, s := range subs {
		rs := stores.RecoveredSub{State: convertSub(s.st, user)}
		dropped := 0
		for seq := range s.pending {
			if seq >= ch.First && seq <= ch.Last {
				rs.Pending = append(rs.Pending, seq)
			} else {
				dropped++
			}
		}
		sort.Slice(rs.Pending, func(i, j int) bool { return rs.Pending[i] < rs.Pending[j] })
		if dropped > 0 {
			src.note("%s: subscription %d (%s): %d pending message(s) no longer stored, dropped", ch.Name, s.st.ID, subName(rs.State), dropped)
		}
		if rs.State.LastSent > ch.Last {
			src.note("%s: subscription %d (%s): last sent %d lowered to the channel's last sequence %d", ch.Name, s.st.ID, subName(rs.State), rs.State.LastSent, ch.Last)
			rs.State.LastSent = ch.Last
		}
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].State.ID < out[j].State.ID })
	return out
}

// convertSub maps an nss subscription to Starling's: nss stores a durable queue group's
// members with QGroup "durable:queue" and no DurableName, Starling with QGroup "queue" and
// DurableName "durable"; nss stores from before IsDurable existed left it false on plain
// durables.
func convertSub(s nssSub, user string) stores.SubState {
	st := stores.SubState{ID: s.ID, ClientID: s.ClientID, QGroup: s.QGroup, Inbox: s.Inbox, AckInbox: s.AckInbox,
		DurableName: s.DurableName, MaxInFlight: s.MaxInFlight, AckWaitSecs: s.AckWaitSecs, LastSent: s.LastSent,
		IsDurable: s.IsDurable || s.DurableName != "", IsClosed: s.IsClosed, User: user}
	if s.IsDurable && s.QGroup != "" && s.DurableName == "" {
		if dur, q, ok := strings.Cut(s.QGroup, ":"); ok && dur != "" && q != "" {
			st.DurableName, st.QGroup = dur, q
		}
	}
	return st
}

// subName describes a subscription for notes and summaries.
func subName(st stores.SubState) string {
	switch {
	case st.QGroup != "" && st.DurableName != "":
		return fmt.Sprintf("durable queue %q group %q", st.DurableName, st.QGroup)
	case st.QGroup != "":
		return fmt.Sprintf("queue group %q", st.QGroup)
	case st.DurableName != "":
		return fmt.Sprintf("durable %q", st.DurableName)
	}
	return "plain"
}

// validChannel is nss's rule for a channel name: dot-separated non-empty tokens, no
// wildcard, no space. Starling's also wants UTF-8 (scanChannel checks it apart, to say so).
func validChannel(name string) bool {
	if name == "" || name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return false
	}
	return !strings.ContainsAny(name, "*> \t\r\n\f/")
}

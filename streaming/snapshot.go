package streaming

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// A snapshot holds the replicated metadata, not message bodies: clients, and every channel
// with its ID, first and last sequence and its subscriptions with their pending sets. A
// replica restored from one fetches the messages it names and lacks from a peer
// (fetchMissing, fetch.go); one still lacking some then (or without a fetcher) refuses the
// snapshot (errMissingMsgs).

// errMissingMsgs: a snapshot names messages the store does not hold.
var errMissingMsgs = errors.New("streaming: the store lacks messages the snapshot names")

// errBadSnapshot: a snapshot that does not decode; it is never trusted.
var errBadSnapshot = errors.New("streaming: malformed snapshot")

type metaSnapshot struct{ pb *raftpb.Snapshot }

// Snapshot implements raftlog.StateMachine: a copy of the metadata, taken between two
// Applies; Persist only encodes it. The store is synced first: the log before a snapshot
// may be compacted away, so what it held must be on disk. (Replicated, the stores are not
// synced per commit — the log is the write-ahead log — so nothing else syncs them then.)
//
// The sync runs without mu: Snapshot runs on the goroutine that applies, the only one that
// changes the maps, and the stores guard themselves. Under bulk replication on a busy disk
// the fsyncs (and the removal of segments they allow) took seconds, and holding mu stalled
// monitoring, the answers to other nodes' fetches, and Decode for as long.
func (m *stateMachine) Snapshot() (raftlog.Snapshot, error) {
	m.mu.Lock()
	chans := slices.Collect(maps.Values(m.chans))
	m.mu.Unlock()
	if err := syncAll(m.store, chans); err != nil {
		return nil, fmt.Errorf("streaming: sync before snapshot: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sn := &raftpb.Snapshot{NextChannelID: m.nextChanID}
	for _, c := range m.clients {
		sn.Clients = append(sn.Clients, clientInfoPB(&c))
	}
	slices.SortFunc(sn.Clients, func(a, b *raftpb.ClientInfo) int { return cmp.Compare(a.ID, b.ID) })
	for _, ch := range m.chans {
		st := ch.Msgs.State()
		cs := &raftpb.ChannelSnapshot{Name: ch.Name, ID: ch.ID, First: st.First, Last: st.Last}
		subs, err := ch.Subs.Subs()
		if err != nil {
			return nil, fmt.Errorf("streaming: snapshot of %q: %w", ch.Name, err)
		}
		for _, rs := range subs {
			cs.Subs = append(cs.Subs, &raftpb.SubSnapshot{State: subStatePB(&rs.State), Pending: rs.Pending})
		}
		sn.Channels = append(sn.Channels, cs)
	}
	slices.SortFunc(sn.Channels, func(a, b *raftpb.ChannelSnapshot) int { return cmp.Compare(a.Name, b.Name) })
	for _, name := range slices.Sorted(maps.Keys(m.deleted)) {
		sn.Deleted = append(sn.Deleted, &raftpb.DeletedChannel{Name: name, Last: m.deleted[name]})
	}
	if m.limits != nil {
		sn.Limits = limitsSetPB(m.limits)
	}
	return &metaSnapshot{pb: sn}, nil
}

func (s *metaSnapshot) Persist(w io.Writer) error {
	b, err := proto.Marshal(s.pb)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (s *metaSnapshot) Release() {}

// Restore implements raftlog.StateMachine: the store is made to hold the snapshot's
// metadata — clients and subscriptions replaced, channels created, re-created (another ID)
// or deleted, except channels created after the snapshot, which the commands that follow
// it recreate idempotently. It refuses a snapshot that does not decode, and one naming
// messages past what the store holds, before changing anything (but deleting the channels
// the snapshot does not hold, when it fetches).
//
// Its steps touch the store in this order: limits; when it fetches, the deletions, then the
// fetches; clients; the deletions (again: one that failed is tried once more); each
// channel's re-creation or creation and its subscriptions; a sync.
func (m *stateMachine) Restore(r io.Reader) (err error) {
	sn, err := decodeSnapshot(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	limits := m.limits // what the replicas apply once restored
	if sn.Limits != nil {
		ls, lerr := m.setRestoreLimits(sn.Limits) // not err: the deferred check sets the result
		if lerr != nil {
			return lerr
		}
		limits = ls
		defer func() {
			if lerr := m.installLimits(ls); lerr != nil {
				err = errors.Join(err, fmt.Errorf("streaming: restore: %w", lerr))
			}
		}()
	}
	// A channel created after the snapshot under a name the snapshot holds (a restart: the
	// snapshot's incarnation was deleted since, and the log after the snapshot deletes it
	// again) stays as it is, like one created after the snapshot under another name: the
	// snapshot's incarnation is neither fetched (no node holds it any more) nor put in its
	// place (the store would then continue the channel after its messages, and the replay
	// would take them for expired).
	later := func(cs *raftpb.ChannelSnapshot) bool {
		ch := m.chans[cs.Name]
		return ch != nil && ch.ID > sn.NextChannelID
	}
	inSnap := map[string]bool{}
	for _, cs := range sn.Channels {
		inSnap[cs.Name] = true
	}
	var errs []error
	if m.fetch != nil {
		errs = m.dropBeforeFetch(sn, inSnap)
		if err := m.fetchMissing(sn.Channels, later); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	if err := m.checkHolds(sn.Channels, later); err != nil {
		return err
	}
	errs = m.restoreClients(sn.Clients, errs)
	errs = m.dropChannelsNotIn(inSnap, sn.NextChannelID, errs)
	for _, cs := range sn.Channels {
		if later(cs) {
			continue
		}
		if err := m.restoreChannel(cs, limits); err != nil {
			errs = append(errs, err)
		}
	}
	m.nextChanID = sn.NextChannelID
	m.rememberDeleted(sn.Deleted)
	errs = append(errs, syncAll(m.store, slices.Collect(maps.Values(m.chans))))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("streaming: restore: %w", err)
	}
	return nil
}

// decodeSnapshot reads a snapshot and refuses one that does not decode, or whose
// subscriptions lack their state.
func decodeSnapshot(r io.Reader) (*raftpb.Snapshot, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("streaming: reading snapshot: %w", err)
	}
	sn := &raftpb.Snapshot{}
	if err := proto.Unmarshal(b, sn); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadSnapshot, err)
	}
	for _, cs := range sn.Channels {
		for _, ss := range cs.Subs {
			if ss.State == nil {
				return nil, fmt.Errorf("%w: a subscription of %q has no state", errBadSnapshot, cs.Name)
			}
		}
	}
	return sn, nil
}

// setRestoreLimits gives the store the snapshot's limits for the restore, and returns them
// for Restore to install once done. m.mu is held.
//
// Installed first: fetched messages are trimmed by the limits the snapshot's replicas
// applied. But its channels and subscriptions exist on them however many the limits allow
// now (lowered limits remove none): they are restored under limits that count none, and the
// replicated ones are installed once restored.
func (m *stateMachine) setRestoreLimits(pb *raftpb.SetLimits) (*stores.LimitsSet, error) {
	ls, err := limitsSet(pb)
	if err == nil {
		err = ls.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadSnapshot, err)
	}
	if err := m.store.SetLimits(uncounted(ls)); err != nil {
		return nil, fmt.Errorf("streaming: restore: %w", err)
	}
	return ls, nil
}

// dropBeforeFetch deletes the channels the snapshot does not hold before fetchMissing
// creates any, and returns the deletions' errors. m.mu is held.
//
// The channels gone go first: created first, the ones fetchMissing creates would count
// against MaxChannels beside them, and be refused. Should a fetch fail, the log this replica
// had may follow instead of the snapshot (a new leader kept it), and its deletions of these
// channels then find them gone: each is remembered as ending where the snapshot says, so
// that one created again with the name continues after the same sequence as on the others.
func (m *stateMachine) dropBeforeFetch(sn *raftpb.Snapshot, inSnap map[string]bool) []error {
	for _, d := range sn.Deleted {
		if ch := m.chans[d.Name]; ch != nil && !inSnap[d.Name] && ch.ID <= sn.NextChannelID {
			m.deleted[d.Name] = max(m.deleted[d.Name], d.Last)
		}
	}
	return m.dropChannelsNotIn(inSnap, sn.NextChannelID, nil)
}

// checkHolds refuses a snapshot naming messages the store lacks (errMissingMsgs), in a
// channel not created after it (later). m.mu is held.
func (m *stateMachine) checkHolds(chans []*raftpb.ChannelSnapshot, later func(*raftpb.ChannelSnapshot) bool) error {
	for _, cs := range chans {
		if ch := m.chans[cs.Name]; cs.Last > 0 && !later(cs) && (ch == nil || ch.ID != cs.ID || ch.Msgs.State().Last < cs.Last) {
			have := uint64(0)
			if ch != nil && ch.ID == cs.ID {
				have = ch.Msgs.State().Last
			}
			return fmt.Errorf("%w: %q holds up to %d, the snapshot up to %d", errMissingMsgs, cs.Name, have, cs.Last)
		}
	}
	return nil
}

// restoreClients makes the store's clients exactly the snapshot's, adding the errors to
// errs. m.mu is held.
func (m *stateMachine) restoreClients(clients []*raftpb.ClientInfo, errs []error) []error {
	keep := map[string]bool{}
	for _, ci := range clients {
		keep[ci.ID] = true
		info := clientInfo(ci)
		if old, ok := m.clients[ci.ID]; !ok || !sameClient(old, info) {
			errs = append(errs, m.store.AddClient(info))
			m.clients[ci.ID] = info
		}
	}
	for id := range m.clients {
		if !keep[id] {
			errs = append(errs, m.store.DeleteClient(id))
			delete(m.clients, id)
		}
	}
	m.clientsDirty = true
	return errs
}

// restoreChannel makes channel cs as the snapshot holds it: another incarnation replaced,
// a missing one created, the messages its replicas removed dropped, its subscriptions
// restored. limits are the replicated limits (nil: none yet). m.mu is held.
func (m *stateMachine) restoreChannel(cs *raftpb.ChannelSnapshot, limits *stores.LimitsSet) error {
	ch := m.chans[cs.Name]
	if ch != nil && ch.ID != cs.ID { // another incarnation (it holds no message the snapshot needs)
		if err := m.dropStored(ch); err != nil {
			return err
		}
		ch = nil
	}
	var err error
	if ch == nil {
		if ch, err = m.store.CreateChannelAfter(cs.Name, cs.ID, cs.Last); err != nil {
			return err
		}
		m.chans[cs.Name] = ch
	}
	if ch, err = m.dropRemoved(ch, cs, limits); err != nil {
		return err
	}
	err = restoreSubs(ch, cs.Subs)
	m.markSubsDirty(ch)
	return err
}

// rememberDeleted replaces the deleted channels' last sequences with the snapshot's. m.mu
// is held.
func (m *stateMachine) rememberDeleted(deleted []*raftpb.DeletedChannel) {
	clear(m.deleted)
	for _, d := range deleted {
		if m.chans[d.Name] == nil { // else created again after the snapshot
			m.deleted[d.Name] = d.Last
		}
	}
}

// uncounted is ls without limits on the number of channels and of subscriptions.
func uncounted(ls *stores.LimitsSet) *stores.LimitsSet {
	u := ls.Clone()
	u.Global.MaxChannels, u.Global.MaxSubs = 0, 0
	for name, l := range u.Channels {
		l.MaxSubs = -1 // unlimited (0 would inherit)
		u.Channels[name] = l
	}
	return u
}

// dropChannelsNotIn deletes the channels a snapshot does not hold (inSnap) and did not
// precede (next is its next channel ID), adding the errors to errs. m.mu is held.
func (m *stateMachine) dropChannelsNotIn(inSnap map[string]bool, next uint64, errs []error) []error {
	for name, ch := range m.chans {
		// A channel created after the snapshot (a higher ID) stays: the commands after the
		// snapshot create it again, idempotently, and a store never takes back sequences it
		// gave, so deleting it would lose its messages for good.
		if !inSnap[name] && ch.ID <= next {
			if err := m.dropStored(ch); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// dropStored deletes ch from the store for a restore and forgets it once gone. A deletion
// the store failed keeps the channel, so it stays known: the restore sent again, or the
// log that follows instead, deletes it (forgotten, it stayed in the store unseen, and its
// name's next creation was refused as existing on this replica alone). The store may also
// refuse the channel until it commits its metadata (the file store's fence): liftFence.
// m.mu is held.
func (m *stateMachine) dropStored(ch *stores.Channel) error {
	err := deletedAnyway(m.store.DeleteChannel(ch.Name))
	if err != nil && !errors.Is(err, stores.ErrNotFound) {
		m.fenced = true
		return err
	}
	m.forget(ch) // gone, whether now or before
	return nil
}

// liftFence commits the store's metadata after a restore's failed deletion: the file store
// fences the channel it kept until meta.log commits, and only an unrelated change would
// commit it on a replica, so the log's commands for the channel (the log that follows a
// failed restore) failed, and stopped the replica, with the disk working again. The commit
// changes no replicated state; failing, it is tried at the next Apply. m.mu is held.
func (m *stateMachine) liftFence() {
	if m.fenced && m.store.Sync() == nil {
		m.fenced = false
	}
}

// fetchMissing gets from the other nodes the messages the snapshot names and the store
// lacks, channel by channel: a channel of another incarnation (ID) is replaced, one whose
// messages the others expired meanwhile restarts at their first. What it appends are
// committed messages, so a failure part way leaves nothing wrong, only work for the retry.
// Channels later reports created after the snapshot are left alone. m.mu is held (and
// released while a fetch waits).
func (m *stateMachine) fetchMissing(chans []*raftpb.ChannelSnapshot, later func(*raftpb.ChannelSnapshot) bool) error {
	for _, cs := range chans {
		ch := m.chans[cs.Name]
		if cs.Last == 0 || later(cs) || ch != nil && ch.ID == cs.ID && ch.Msgs.State().Last >= cs.Last {
			continue
		}
		// Another incarnation, none, or one whose last message precedes the others' first
		// (they expired everything in between): the channel starts again right before their
		// first message — after their last when they hold none (all expired, or created
		// again after a deletion), which no fetch could bring.
		if ch == nil || ch.ID != cs.ID || ch.Msgs.State().Last+1 < cs.First {
			var err error
			if ch, err = m.replaceChannel(ch, cs.Name, cs.ID, cs.First-1); err != nil {
				return fmt.Errorf("streaming: creating %q for the snapshot: %w", cs.Name, err)
			}
		}
		if cs.First > cs.Last {
			continue // nothing to fetch
		}
		from := max(ch.Msgs.State().Last+1, cs.First)
		if err := m.unfetched.covers(cs, from); err != nil {
			return fmt.Errorf("streaming: restoring %q (%d..%d): %w", cs.Name, from, cs.Last, err)
		}
		// Without mu while the fetch waits (until fetchTimeout passes without a new message,
		// however long the channel takes, or the node stops): monitoring and the answers to
		// other nodes' fetches go on meanwhile, showing what arrived so far. Restore runs on
		// the goroutine that applies, the only one that changes the maps; the stores guard
		// themselves.
		m.mu.Unlock()
		m.catchingUp.Store(true)
		err := m.fetch(m.fetching, cs.Name, cs.ID, from, cs.Last, func(first uint64, msgs []stores.Msg) error {
			if st := ch.Msgs.State(); first > st.Last+1 {
				// The others expired more meanwhile: the channel restarts at their first.
				m.mu.Lock()
				var err error
				ch, err = m.replaceChannel(ch, cs.Name, cs.ID, first-1)
				m.mu.Unlock()
				if err != nil {
					return err
				}
			}
			return ch.Msgs.Append(msgs)
		})
		m.catchingUp.Store(false)
		m.mu.Lock()
		if err != nil {
			if m.atStart && errors.Is(err, errFetch) && m.fetching.Err() == nil {
				m.unfetched = &unfetched{channel: cs.Name, id: cs.ID, seq: ch.Msgs.State().Last + 1,
					noAnswer: errors.Is(err, errNoAnswer), err: err}
			}
			return fmt.Errorf("streaming: restoring %q (%d..%d): %w", cs.Name, from, cs.Last, err)
		}
		if err := ch.Msgs.Sync(); err != nil {
			return fmt.Errorf("streaming: restoring %q: %w", cs.Name, err)
		}
	}
	return nil
}

// unfetched is what a fetch failed to get while the node restored a snapshot at start:
// message seq of channel (ID id), or anything when no node answered at all. raft then tries
// the older snapshots in turn, which name the same messages or fewer; one naming that message
// (or, with no node answering, any message the store lacks) fails at once with the same
// error, rather than after another fetch timeout each: with N snapshots kept, a start without
// the others took N times the timeout to fail. One the store holds restores as before.
type unfetched struct {
	channel  string
	id, seq  uint64
	noAnswer bool
	err      error
}

// covers returns, if u (nil: none) says fetching cs's messages from on fails, why.
func (u *unfetched) covers(cs *raftpb.ChannelSnapshot, from uint64) error {
	if u == nil || !u.noAnswer && (u.channel != cs.Name || u.id != cs.ID || u.seq < from || u.seq > cs.Last) {
		return nil
	}
	return fmt.Errorf("%w (a newer snapshot's fetch failed at this start; not asked again)", u.err)
}

// restoringAtStart marks the log's restore at start (New) under way, or over: a failed
// fetch is remembered for the older snapshots meanwhile, and forgotten afterwards, when
// every restore (a leader sending its snapshot) fetches afresh.
func (m *stateMachine) restoringAtStart(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.atStart, m.unfetched = on, nil
}

// dropRemoved removes from ch the messages before the snapshot's first: the snapshot's
// replicas removed them (max_age, or limits lowered) while this one, away, missed the
// commands that did. It returns the channel, replaced if none of its messages stays.
// limits are the replicated limits (nil: none yet). m.mu is held.
func (m *stateMachine) dropRemoved(ch *stores.Channel, cs *raftpb.ChannelSnapshot, limits *stores.LimitsSet) (*stores.Channel, error) {
	st := ch.Msgs.State()
	switch {
	case st.Msgs == 0 || st.First >= cs.First:
		return ch, nil
	case st.Last < cs.First: // all of them: the channel continues after its last, empty
		return m.replaceChannel(ch, cs.Name, cs.ID, st.Last)
	case limits == nil:
		return ch, nil // the channel's limits could not be put back: the next expiry or publish trims it
	}
	// The oldest go as MaxMsgs removes them; then the channel's own limits are back.
	ch.Msgs.SetLimits(stores.Limits{MaxMsgs: int(st.Last - cs.First + 1)})
	ch.Msgs.Expire(0)
	ch.Msgs.SetLimits(limits.For(cs.Name))
	return ch, nil
}

// replaceChannel deletes old (nil: none) and creates channel name with id in its place,
// continuing after sequence after at least. m.mu is held.
func (m *stateMachine) replaceChannel(old *stores.Channel, name string, id, after uint64) (*stores.Channel, error) {
	if old != nil {
		if err := m.dropStored(old); err != nil {
			return nil, err
		}
	}
	ch, err := m.store.CreateChannelAfter(name, id, after)
	if err != nil {
		return nil, err
	}
	m.chans[name] = ch
	m.nextChanID = max(m.nextChanID, id)
	return ch, nil
}

// syncAll makes chans and the client records of store durable.
func syncAll(store stores.Store, chans []*stores.Channel) error {
	var errs []error
	for _, ch := range chans {
		errs = append(errs, ch.Msgs.Sync(), ch.Subs.Sync())
	}
	errs = append(errs, store.Sync())
	return errors.Join(errs...)
}

func sameClient(a, b stores.ClientInfo) bool {
	return a.ID == b.ID && a.HbInbox == b.HbInbox && string(a.ConnID) == string(b.ConnID) && a.Protocol == b.Protocol &&
		a.PingInterval == b.PingInterval && a.PingMaxOut == b.PingMaxOut && a.User == b.User
}

// restoreSubs makes ch's subscriptions exactly subs, pending sets included.
func restoreSubs(ch *stores.Channel, subs []*raftpb.SubSnapshot) error {
	have, err := ch.Subs.Subs()
	if err != nil {
		return err
	}
	old := map[uint64][]uint64{}
	for _, rs := range have {
		old[rs.State.ID] = rs.Pending
	}
	var errs []error
	// The subscriptions gone go first: created first, new ones would count against MaxSubs
	// beside them, and be refused.
	inSnap := map[uint64]bool{}
	for _, ss := range subs {
		inSnap[ss.State.ID] = true
	}
	for id := range old {
		if !inSnap[id] {
			errs = append(errs, ch.Subs.DeleteSub(id))
			delete(old, id)
		}
	}
	var events []stores.SubEvent
	for _, ss := range subs {
		st := storeSubState(ss.State)
		pending, existed := old[st.ID]
		delete(old, st.ID)
		if existed {
			errs = append(errs, ch.Subs.UpdateSub(&st))
		} else {
			errs = append(errs, ch.Subs.CreateSub(&st))
		}
		want := map[uint64]bool{}
		for _, seq := range ss.Pending {
			want[seq] = true
		}
		for _, seq := range pending {
			if !want[seq] {
				events = append(events, stores.SubEvent{SubID: st.ID, Seq: seq, Acked: true})
			}
			delete(want, seq)
		}
		for _, seq := range ss.Pending {
			if want[seq] {
				events = append(events, stores.SubEvent{SubID: st.ID, Seq: seq})
			}
		}
	}
	if len(events) > 0 {
		errs = append(errs, ch.Subs.Record(events))
	}
	return errors.Join(errs...)
}

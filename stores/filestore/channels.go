package filestore

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/starling-io/starling/stores"
)

// CreateChannel implements stores.Store: durable when it returns.
func (s *Store) CreateChannel(name string, id uint64) (*stores.Channel, error) {
	return s.CreateChannelAfter(name, id, 0)
}

// CreateChannelAfter implements stores.Store: durable when it returns.
func (s *Store) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	out, errs := s.CreateChannels([]stores.NewChannel{{Name: name, ID: id, After: after}})
	return out[0], errs[0]
}

// CreateChannels implements stores.ChannelsCreator: the channels' directories are made, the
// store directory fsynced once, then their C records written as one batch of meta.log and
// fsynced — two fsyncs, however many channels. Durable when it returns.
func (s *Store) CreateChannels(cs []stores.NewChannel) ([]*stores.Channel, []error) {
	out, errs := make([]*stores.Channel, len(cs)), make([]error, len(cs))
	s.meta.syncMu.Lock() // before mu: a commit of client records takes mu under it
	defer s.meta.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	made := make([]*channel, len(cs)) // nil: refused
	next, n := s.nextDir, 0
	for i, c := range cs {
		if slices.ContainsFunc(made[:i], func(m *channel) bool { return m != nil && m.ch.Name == c.Name }) {
			errs[i] = stores.ErrExists
			continue
		}
		made[i], errs[i] = s.makeChannelDir(c, next, len(s.channels)+n)
		if made[i] != nil {
			next++
			n++
		}
	}
	if n == 0 {
		return out, errs
	}
	fail := func(i int, err error) {
		if made[i].msgs != nil {
			made[i].msgs.abandon()
			made[i].subs.abandon()
		}
		made[i], errs[i] = nil, err
	}
	if err := syncDir(s.dir, &s.opts); err != nil {
		for i := range made {
			if made[i] != nil {
				fail(i, err)
			}
		}
		return out, errs
	}
	type tomb struct {
		last uint64
		ok   bool
	}
	tombs := make([]tomb, len(cs))
	for i, ch := range made {
		if ch == nil {
			continue
		}
		if err := s.openChannel(cs[i].Name, ch); err != nil {
			fail(i, err)
			continue
		}
		s.meta.add(encChannel(s.buf[:0], ch.ch.Name, ch.ch.ID, ch.dirNum, ch.base))
		// In memory before the sync: a rewrite of meta.log at that sync writes the snapshot
		// instead of the records, and the snapshot must name the channels.
		tombs[i].last, tombs[i].ok = s.tombs[ch.ch.Name]
		s.channels[ch.ch.Name] = ch
		delete(s.tombs, ch.ch.Name)
	}
	err := s.meta.syncLocked()
	for i, ch := range made {
		switch {
		case ch == nil:
		case err != nil:
			delete(s.channels, ch.ch.Name)
			if tombs[i].ok {
				s.tombs[ch.ch.Name] = tombs[i].last
			}
			fail(i, err)
		default:
			out[i] = &ch.ch
		}
	}
	if err == nil {
		s.nextDir = next
	}
	return out, errs
}

// makeChannelDir checks that c may be created as the count+1th channel and makes its
// directory, number dn (not durable yet: the caller fsyncs the store directory).
func (s *Store) makeChannelDir(c stores.NewChannel, dn uint64, count int) (*channel, error) {
	if s.closed {
		return nil, stores.ErrClosed
	}
	if _, ok := s.channels[c.Name]; ok {
		return nil, stores.ErrExists
	}
	if d, ok := s.damaged[c.Name]; ok {
		return nil, d.err
	}
	if n := s.limits.Global.MaxChannels; n > 0 && count >= n {
		return nil, stores.ErrTooManyChannels
	}
	ch := &channel{ch: stores.Channel{Name: c.Name, ID: c.ID}, dirNum: dn, base: max(s.tombs[c.Name], c.After)}
	d := s.chanDir(dn)
	// What a failed CreateChannel left goes; data no record names is never deleted.
	if data, err := holdsData(d); err != nil {
		return nil, err
	} else if data != "" {
		return nil, fmt.Errorf("filestore: %w: %s holds %s, yet meta.log names no channel for it: not removed, no channel created (stop the server and run starling store verify %s)",
			ErrCorrupt, d, data, s.dir)
	}
	if err := removeAll(d, &s.opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	return ch, nil
}

// DeleteChannel implements stores.Store: durable when it returns.
func (s *Store) DeleteChannel(name string) error { return s.DeleteChannels([]string{name})[0] }

// DeleteChannels implements stores.ChannelsDeleter: the X records as one batch of meta.log,
// one fsync, then each directory renamed and removed. Durable when it returns.
func (s *Store) DeleteChannels(names []string) []error {
	errs := make([]error, len(names))
	s.meta.syncMu.Lock()
	defer s.meta.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	type drop struct {
		i       int
		ch      *channel
		tomb    uint64
		hadTomb bool
	}
	var drops []drop
	for i, name := range names {
		if s.closed {
			errs[i] = stores.ErrClosed
			continue
		}
		ch, ok := s.channels[name]
		if !ok {
			errs[i] = stores.ErrNotFound
			if d, ok := s.damaged[name]; ok {
				errs[i] = d.err
			}
			continue
		}
		last := ch.msgs.State().Last
		s.meta.add(encChanDel(s.buf[:0], name, last, ch.dirNum))
		// Gone from memory before the sync, as the record says: a rewrite of meta.log at
		// that sync writes the snapshot instead, which must not name the channel (its
		// directory is removed next) and must keep the record's directory number (dropping).
		d := drop{i: i, ch: ch}
		d.tomb, d.hadTomb = s.tombs[name]
		delete(s.channels, name)
		if last > 0 {
			s.tombs[name] = last
		}
		s.dropping = append(s.dropping, dropRec{name: name, last: last, dn: ch.dirNum})
		drops = append(drops, d)
	}
	if len(drops) == 0 {
		return errs
	}
	err := s.meta.syncLocked()
	s.dropping = nil
	if err != nil {
		kept := make([]*channel, len(drops))
		for k, d := range drops {
			name := d.ch.ch.Name
			s.channels[name] = d.ch
			delete(s.tombs, name)
			if d.hadTomb {
				s.tombs[name] = d.tomb
			}
			errs[d.i] = err
			kept[k] = d.ch
		}
		s.keepNamed(kept, err)
		return errs
	}
	for _, d := range drops {
		d.ch.msgs.markDeleted()
		d.ch.subs.markDeleted()
		// Renamed before it is removed: a crash, or a removal that fails half way, leaves
		// a directory whose name says it is a deleted channel's, never a channel directory
		// no record names (which Open refuses to delete when it holds data). Until the
		// rename is durable the X record names the directory: the next fsync of the store
		// directory (a meta.log rewrite's, which is what drops the number) makes it so.
		dir := s.chanDir(d.ch.dirNum)
		if rerr := renameFile(dir, dir+deletedSuffix, &s.opts); rerr != nil {
			errs[d.i] = s.uncleaned(d.ch.ch.Name, errors.Join(rerr, removeAll(dir, &s.opts)))
			continue
		}
		errs[d.i] = s.uncleaned(d.ch.ch.Name, removeAll(dir+deletedSuffix, &s.opts))
	}
	return errs
}

// uncleaned marks a failure to remove a channel's files after meta.log made its deletion
// durable: the deletion stands (the caller must not keep the channel), and Open removes the
// files left (stray.go).
func (s *Store) uncleaned(name string, err error) error {
	if err == nil {
		return nil
	}
	s.opts.Logger.Warn("filestore: a deleted channel's files were not removed; the next open removes them", "channel", name, "err", err)
	return fmt.Errorf("%w: %w", stores.ErrDeletedUncleaned, err)
}

// keepNamed is a failed DeleteChannels' undo: the channels kept must stay named in
// meta.log, yet the failed sync may have left their X records in it (appended, or in a
// rewrite renamed into place before the directory's fsync failed), and a crash would then
// remove their directories at open with whatever they acknowledged since. So meta.log is
// rewritten at once (it is broken: the next flush writes the snapshot, which names them);
// if that fails too they refuse everything until a commit of meta.log succeeds (unfence),
// which their Rollback tries.
// Caller holds syncMu and mu.
func (s *Store) keepNamed(kept []*channel, cause error) {
	if s.meta.syncLocked() == nil {
		return
	}
	err := fmt.Errorf("filestore: channel deletion failed (%w) and meta.log is not committed since", cause)
	for _, ch := range kept {
		ch.msgs.setFence(err, s.recommit)
		ch.subs.setFence(err)
	}
	s.fenced = append(s.fenced, kept...)
}

// unfence lifts the fences of keepNamed: meta.log was just committed, and the log was
// broken since they were set, so it is a rewrite naming every channel in memory. Caller
// holds mu.
func (s *Store) unfence() {
	for _, ch := range s.fenced {
		ch.msgs.setFence(nil, nil)
		ch.subs.setFence(nil)
	}
	clear(s.fenced)
	s.fenced = s.fenced[:0]
}

// recommit commits meta.log for a fenced channel's Rollback: the engine's retry, which
// would otherwise wait for an unrelated change of meta.log.
func (s *Store) recommit() error {
	s.meta.syncMu.Lock()
	defer s.meta.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	return s.meta.syncLocked()
}

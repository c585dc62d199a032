package boltstore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/starling-io/starling/boltcheck"
	"github.com/starling-io/starling/stores"
)

// Report is what Verify found in a bolt store file.
type Report struct {
	Path     string
	Fresh    bool // no store in the file yet: missing, empty, or never opened by a server
	Clean    bool // the last run ended with Close
	Clients  int
	Channels []ChannelReport // by name
	Warnings []string        // what Open would log: an invalid meta page (boltcheck.FileWarn)
}

// ChannelReport is one channel as Open would recover it.
type ChannelReport struct {
	Name                     string
	First, Last, Msgs, Bytes uint64
	Subs                     int
	Damaged                  []uint64 // messages whose record fails its checksum (Load refuses them)
}

// Verify checks the bolt store file at path as Open does — the page structure
// (boltcheck), the buckets, and every record recovery reads — without changing anything:
// the file is opened read-only and a zero-filled one is reported, not truncated. A damaged
// file is an error wrapping ErrCorrupt, another program's ErrForeign, as Open's. The server
// must not hold the file: Verify fails after lockTimeout (0: 1 s) saying it is in use.
func Verify(path string, lockTimeout time.Duration) (rep Report, err error) {
	rep.Path = path
	fresh, warning, err := boltcheck.Check(path)
	if warning != "" {
		rep.Warnings = append(rep.Warnings, warning)
	}
	switch {
	case errors.Is(err, boltcheck.ErrDamaged):
		return rep, fmt.Errorf("%w: %w", ErrCorrupt, err)
	case err != nil:
		return rep, err
	case fresh:
		rep.Fresh = true
		return rep, nil
	}
	if lockTimeout == 0 {
		lockTimeout = time.Second
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return rep, fmt.Errorf("boltstore: %s is in use by another process (stop the server first)", path)
	}
	if err != nil {
		return rep, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	defer db.Close()
	s := &Store{db: db, limits: &stores.LimitsSet{}, clients: make(map[string]stores.ClientInfo),
		channels: make(map[string]*channel), tombs: make(map[string]uint64)}
	s.c = newCommitter(db, &s.hooks)
	damaged := make(map[string][]uint64)
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkBuckets(tx); err != nil {
			return err
		}
		meta := tx.Bucket([]byte(bktMeta))
		if meta == nil { // checkBuckets: none of the four
			rep.Fresh = true
			return nil
		}
		rep.Clean = meta.Get([]byte(keyClean)) != nil
		if err := s.read(tx); err != nil {
			return err
		}
		for name, ch := range s.channels {
			damaged[name] = ch.msgs.checkSums(tx)
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrForeign) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return rep, fmt.Errorf("boltstore: verify %s: %w", path, err)
	}
	rep.Clients = len(s.clients)
	for name, ch := range s.channels {
		st := ch.msgs.State()
		rep.Channels = append(rep.Channels, ChannelReport{Name: name, First: st.First, Last: st.Last,
			Msgs: st.Msgs, Bytes: st.Bytes, Subs: len(ch.subs.subs), Damaged: damaged[name]})
	}
	slices.SortFunc(rep.Channels, func(a, b ChannelReport) int { return cmp.Compare(a.Name, b.Name) })
	var errs []error
	for _, ch := range rep.Channels {
		if n := len(ch.Damaged); n > 0 {
			errs = append(errs, fmt.Errorf("channel %q: %d message(s) fail their checksum, damaged on disk "+
				"(the server refuses to serve them): %s", ch.Name, n, seqList(ch.Damaged, 10)))
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("boltstore: verify %s: %w: %w", path, ErrCorrupt, errors.Join(errs...))
	}
	return rep, nil
}

// seqList lists the first limit sequences of seqs.
func seqList(seqs []uint64, limit int) string {
	var b strings.Builder
	for i, q := range seqs {
		if i == limit {
			fmt.Fprintf(&b, " and %d more", len(seqs)-limit)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(q, 10))
	}
	return b.String()
}

// checkSums returns the stored messages of the channel (loaded from tx) whose record
// fails its checksum. Blocks of earlier versions carry none; what load refused never gets
// here.
func (ms *msgStore) checkSums(tx *bolt.Tx) (bad []uint64) {
	b := tx.Bucket(ms.mkey)
	if b == nil || ms.msgs == 0 {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); len(k) == 8; k, v = c.Next() {
		if v != nil {
			continue // one message of the per-key layout: no checksum
		}
		blk, sums := blockOf(b.Bucket(k))
		if !sums {
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		for off := uint32(0); int(off) < len(blk); seq++ {
			v, sum, next, ok := record(blk, off, true)
			if !ok {
				break
			}
			if seq >= ms.first && seq <= ms.last && msgSum(seq, v) != sum {
				bad = append(bad, seq)
			}
			off = next
		}
	}
	return bad
}

package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/chunked"
)

// Problem kinds found by Verify.
const (
	ProblemTornTail = "torn-tail" // incomplete or garbled records at the end of a tail: cut by Repair (and by Open)
	ProblemIndex    = "index"     // an index file missing or disagreeing with its segment: rebuilt by Repair (and by Open)
	ProblemCorrupt  = "corrupt"   // damage before the end of a file: Repair refuses unless Options.Quarantine
	ProblemGap      = "gap"       // segments do not continue each other: Repair refuses unless Options.Quarantine
	ProblemVersion  = "version"   // a file of an unknown format version: never repaired
	ProblemMissing  = "missing"   // a channel directory is missing: Open fails the channel, Repair recreates it empty
	// The subscription journal of a tail does not continue subs.log (or a record of it is
	// malformed): Repair refuses unless Options.Quarantine; then subs.log is rewritten with
	// the state up to there (the old one copied into quarantine/) and the rest of the
	// journal is dropped.
	ProblemJournal = "journal"
	// A channel directory holding messages or subscriptions that meta.log names no channel
	// for (and does not say was deleted): meta.log lost records. Open refuses the store;
	// Repair refuses unless Options.Quarantine, then moves it into <store>/quarantine/.
	ProblemStray = "stray"
)

// Problem is one defect found by Verify.
type Problem struct {
	Channel string // "" for meta.log
	File    string
	Offset  int64
	Kind    string
	Detail  string
	// Repairable: Repair fixes it without dropping intact data.
	Repairable bool
	// Fixed is set by Repair once it has fixed (or quarantined) it.
	Fixed bool
}

func (p Problem) String() string {
	ch := ""
	if p.Channel != "" {
		ch = fmt.Sprintf("channel %q: ", p.Channel)
	}
	return fmt.Sprintf("%s%s: %s at offset %d: %s", ch, p.File, p.Kind, p.Offset, p.Detail)
}

// ChannelStats describes one channel as found on disk.
type ChannelStats struct {
	Name     string
	Dir      string
	Segments int
	// First and Last are the channel's sequences as Open would recover them (First > Last:
	// no messages); Msgs counts the intact messages from First to Last.
	First, Last uint64
	Msgs        uint64
	Bytes       int64 // size of the segment files
	Subs        int   // intact records of subs.log (its LSN records not counted)
	Damaged     bool  // Open would not open it
}

// Report is the result of Verify or Repair.
type Report struct {
	Dir         string
	Channels    []ChannelStats
	Problems    []Problem
	Quarantined []string // files Repair moved into a quarantine/ directory
}

// OK reports whether no problem is left unfixed.
func (r *Report) OK() bool {
	for _, p := range r.Problems {
		if !p.Fixed {
			return false
		}
	}
	return true
}

// segInfo is what Verify learned about one segment file.
type segInfo struct {
	path     string
	base     string
	first    uint64
	size     int64
	ents     []entry
	end      int64  // end of the intact prefix
	bad      bool   // damaged before its end (not a torn tail)
	why      string // why it is damaged
	torn     bool   // torn tail (or torn header)
	maxSeq   uint64 // highest sequence of any intact record, also past damage
	markF    uint64 // last marker in the intact prefix
	markL    uint64
	idxWhy   string // non-empty: index must be rebuilt
	verError bool
	journal  []jrec // the tail's journal records
}

// Verify checks, without modifying anything, every file of the store in dir: headers,
// record CRCs, sequence continuity within and across segments, and indexes. The store must
// not be open. The error is for failures to read the directory; defects are in Report.
func Verify(dir string, opts Options) (Report, error) {
	lock, err := lockDir(dir, true)
	if err != nil {
		return Report{Dir: dir}, err
	}
	if lock != nil {
		defer lock.Close()
	}
	r, _, err := verify(dir)
	return r, err
}

type chanInfo struct {
	name  string
	dir   string
	ch    *channel
	segs  []*segInfo
	stats *ChannelStats
	clean cleanClose // what a clean Close left of its files (T and L records), as Open checks
}

func verify(dir string) (Report, []*chanInfo, error) {
	rep := Report{Dir: dir}
	if err := stores.CheckImportMarker(dir); err != nil {
		return rep, nil, fmt.Errorf("filestore: %w", err)
	}
	metaPath := filepath.Join(dir, "meta.log")
	end, _, err := readMetaEnd(dir)
	if err != nil {
		return rep, nil, err
	}
	data, err := os.ReadFile(metaPath)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && end.size > 0) {
		return rep, nil, err
	}
	if ld, perr := parseLog(metaPath, magicMeta, data); perr == nil { // as Open checks it
		if why := end.cut(ld); why != "" {
			rep.Problems = append(rep.Problems, Problem{File: metaPath, Offset: int64(ld.end), Kind: ProblemCorrupt, Detail: why})
			data = data[:ld.end:ld.end] // the cut is damage, not also a torn tail to cut
		}
	}
	s := &Store{dir: dir, clients: map[string]stores.ClientInfo{}, channels: map[string]*channel{}, tombs: map[string]uint64{}}
	recs, ok := verifyLog(&rep, "", metaPath, magicMeta, data)
	if !ok {
		return rep, nil, nil
	}
	for _, rec := range recs {
		s.replay(rec)
	}
	if len(recs) == 0 { // as Open refuses it
		if segs, _ := filepath.Glob(filepath.Join(dir, "ch[0-9]*", "*.seg")); len(segs) > 0 {
			rep.Problems = append(rep.Problems, Problem{File: metaPath, Kind: ProblemCorrupt,
				Detail: fmt.Sprintf("holds no record, yet %s holds messages: the store's metadata is lost", filepath.Dir(segs[0]))})
		}
	}
	used := map[string]bool{}
	for _, ch := range s.channels {
		used[filepath.Base(s.chanDir(ch.dirNum))] = true
	}
	strays, err := strayDirs(dir, used, s.deadDirs)
	if err != nil {
		return rep, nil, err
	}
	for _, d := range strays { // as Open decides
		if !d.dead && d.data != "" {
			rep.Problems = append(rep.Problems, Problem{File: d.path, Kind: ProblemStray,
				Detail: fmt.Sprintf("holds %s, yet meta.log names no channel for it (records of it lost?): Open refuses the store", d.data)})
		}
	}
	infos := []*chanInfo{} // not nil: meta.log was read
	for _, name := range slices.Sorted(keys(s.channels)) {
		ch := s.channels[name]
		ci := &chanInfo{name: name, dir: s.chanDir(ch.dirNum), ch: ch}
		if c := s.closeAt[ch.dirNum]; c != nil {
			ci.clean = *c
		}
		rep.Channels = append(rep.Channels, ChannelStats{Name: name, Dir: ci.dir})
		infos = append(infos, ci)
	}
	for i, ci := range infos {
		ci.stats = &rep.Channels[i]
		if err := verifyChannel(&rep, ci); err != nil {
			return rep, nil, err
		}
	}
	return rep, infos, nil
}

// verifyLog checks a framed log; it returns the intact records before any damage, and false
// if the file cannot be read at all.
func verifyLog(rep *Report, channel, path, magic string, data []byte) ([][]byte, bool) {
	if len(data) == 0 {
		return nil, true
	}
	ld, err := parseLog(path, magic, data)
	switch {
	case errors.Is(err, ErrVersion):
		rep.Problems = append(rep.Problems, Problem{Channel: channel, File: path, Kind: ProblemVersion, Detail: err.Error()})
		return nil, false
	case err != nil:
		rep.Problems = append(rep.Problems, Problem{Channel: channel, File: path, Kind: ProblemCorrupt, Detail: err.Error()})
		return nil, false
	case ld.torn:
		rep.Problems = append(rep.Problems, Problem{Channel: channel, File: path, Kind: ProblemTornTail,
			Detail: fmt.Sprintf("torn header (%d bytes)", len(data)), Repairable: true})
		return nil, true
	}
	if ld.end != len(data) {
		if why := ld.damage(data); why != "" {
			rep.Problems = append(rep.Problems, Problem{Channel: channel, File: path, Offset: int64(ld.end), Kind: ProblemCorrupt, Detail: why})
		} else {
			rep.Problems = append(rep.Problems, Problem{Channel: channel, File: path, Offset: int64(ld.end), Kind: ProblemTornTail,
				Detail: fmt.Sprintf("%d bytes after the last intact record", len(data)-ld.end), Repairable: true})
		}
	}
	return ld.recs, true
}

func verifyChannel(rep *Report, ci *chanInfo) error {
	st := ci.stats
	if _, err := os.Stat(ci.dir); errors.Is(err, os.ErrNotExist) {
		ci.damage(rep, Problem{File: ci.dir, Kind: ProblemMissing, Detail: "channel directory missing: its messages and subscriptions are lost", Repairable: true})
		st.Damaged = true // Open fails the channel until Repair recreates the directory
		st.First, st.Last = ci.ch.base+1, ci.ch.base
		return nil
	}
	subsLSN, err := verifySubsLog(rep, ci)
	if err != nil {
		return err
	}
	if err := ci.listSegs(); err != nil {
		return err
	}
	cleanSize := ci.cleanTailSize(rep)
	markF, markL, err := ci.checkSegs(rep, cleanSize)
	if err != nil {
		return err
	}
	// The tail's journal must continue subs.log, as Open requires.
	if n := len(ci.segs); n > 0 && !ci.segs[n-1].bad && !ci.segs[n-1].verError {
		tail := ci.segs[n-1]
		if i, why := journalBreak(subsLSN, tail.journal); i >= 0 {
			ci.damage(rep, Problem{File: tail.path, Offset: tail.journal[i].off, Kind: ProblemJournal, Detail: why})
		}
	}
	ci.setBounds(rep, markF, markL)
	return nil
}

// damage adds p to rep as a problem of the channel; one Repair cannot fix marks the
// channel damaged.
func (ci *chanInfo) damage(rep *Report, p Problem) {
	p.Channel = ci.name
	rep.Problems = append(rep.Problems, p)
	if !p.Repairable {
		ci.stats.Damaged = true
	}
}

// verifySubsLog checks the channel's subs.log, counts its subscriptions and returns the
// LSN it reaches.
func verifySubsLog(rep *Report, ci *chanInfo) (uint64, error) {
	st := ci.stats
	subsPath := filepath.Join(ci.dir, "subs.log")
	var subsLSN uint64 // the LSN subs.log reaches
	data, err := os.ReadFile(subsPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	if ld, perr := parseLog(subsPath, magicSubs, data); perr == nil { // as Open checks it
		if why := (cleanProof{size: ci.clean.subs}).cut(ld); why != "" {
			ci.damage(rep, Problem{File: subsPath, Offset: int64(ld.end), Kind: ProblemCorrupt, Detail: why})
			data = data[:ld.end:ld.end] // the cut is damage, not also a torn tail to cut
		}
	}
	if err == nil {
		startLen := len(rep.Problems)
		recs, _ := verifyLog(rep, ci.name, subsPath, magicSubs, data)
		for _, p := range rep.Problems[startLen:] {
			if !p.Repairable {
				st.Damaged = true
			}
		}
		for _, r := range recs {
			if len(r) == 0 || r[0] != subLSN {
				st.Subs++
			}
		}
		subsLSN = logLSN(recs)
	}
	return subsLSN, nil
}

// listSegs fills ci.segs with the channel's segment files, in order.
func (ci *chanInfo) listSegs() error {
	names, err := filepath.Glob(filepath.Join(ci.dir, "*.seg"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		var first uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "%020d.seg", &first); err != nil {
			continue
		}
		ci.segs = append(ci.segs, &segInfo{path: n, base: strings.TrimSuffix(n, ".seg"), first: first})
	}
	ci.stats.Segments = len(ci.segs)
	return nil
}

// cleanTailSize returns the bytes of the tail a clean Close fsynced (0: unknown), after
// checking, as Open does, that the tail is the segment it fsynced.
func (ci *chanInfo) cleanTailSize(rep *Report) int64 {
	var cleanSize int64
	if c := ci.clean.tail; c != nil { // as Open checks it
		if want := segPath(ci.dir, c.first) + ".seg"; len(ci.segs) == 0 || ci.segs[len(ci.segs)-1].path != want {
			ci.damage(rep, Problem{File: want, Kind: ProblemCorrupt, Detail: fmt.Sprintf(
				"tail segment missing: the clean shutdown left it holding %d synced bytes (Last %d)", c.size, c.last)})
		} else {
			cleanSize = int64(c.size)
		}
	}
	return cleanSize
}

// checkSegs checks each segment and reports its problems; it returns the last marker
// found.
func (ci *chanInfo) checkSegs(rep *Report, cleanSize int64) (uint64, uint64, error) {
	st := ci.stats
	markF, markL := uint64(0), uint64(0)
	for i, si := range ci.segs {
		tail, want := i == len(ci.segs)-1, int64(0)
		if tail {
			want = cleanSize
		}
		if err := si.check(tail, want); err != nil {
			return 0, 0, err
		}
		st.Bytes += si.size
		switch {
		case si.verError:
			ci.damage(rep, Problem{File: si.path, Kind: ProblemVersion, Detail: si.idxWhy})
			continue
		case si.bad:
			ci.damage(rep, Problem{File: si.path, Offset: si.end, Kind: ProblemCorrupt, Detail: si.why})
		case si.torn:
			ci.damage(rep, Problem{File: si.path, Offset: si.end, Kind: ProblemTornTail,
				Detail: fmt.Sprintf("%d bytes after the last intact record", si.size-si.end), Repairable: true})
		}
		if si.idxWhy != "" && !si.bad {
			ci.damage(rep, Problem{File: si.base + ".idx", Kind: ProblemIndex, Detail: si.idxWhy, Repairable: true})
		}
		if si.markF != 0 {
			markF, markL = si.markF, si.markL
		}
	}
	return markF, markL, nil
}

// setBounds sets the channel's First, Last and message count as Open computes them, and
// reports gaps between the segments that hold them.
func (ci *chanInfo) setBounds(rep *Report, markF, markL uint64) {
	st := ci.stats
	last := max(ci.ch.base, markL)
	for i := len(ci.segs) - 1; i >= 0; i-- {
		if si := ci.segs[i]; len(si.ents) > 0 {
			last = max(last, si.first+uint64(len(si.ents))-1)
			break
		}
	}
	first := markF
	if len(ci.segs) > 0 {
		first = max(first, ci.segs[0].first)
	}
	first = max(first, 1)
	live := ci.segs
	for len(live) > 1 && live[0].first+uint64(len(live[0].ents)) <= first && !live[0].bad {
		live = live[1:]
	}
	for i := 1; i < len(live); i++ {
		p, c := live[i-1], live[i]
		if p.bad || c.verError || p.verError {
			continue
		}
		if p.first+uint64(len(p.ents)) != c.first {
			ci.damage(rep, Problem{File: c.path, Kind: ProblemGap,
				Detail: fmt.Sprintf("the previous segment ends at sequence %d, this one starts at %d", p.first+uint64(len(p.ents))-1, c.first)})
		}
	}
	if len(live) > 0 && first < live[0].first {
		first = live[0].first
	}
	st.First, st.Last = first, last
	for _, si := range live {
		for i := range si.ents {
			if seq := si.first + uint64(i); seq >= first && seq <= last {
				st.Msgs++
			}
		}
	}
	if st.First > st.Last {
		st.First = st.Last + 1
	}
}

// check scans one segment file (read-only). cleanSize: the bytes of this tail a clean Close
// fsynced (0: unknown); intact records ending before it are damage.
func (si *segInfo) check(tail bool, cleanSize int64) error {
	f, err := os.Open(si.path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, ok, err := si.checkHeader(f, tail, cleanSize)
	if err != nil || !ok {
		return err
	}
	seg := &segment{hdr: h, first: si.first, base: si.base, f: f}
	var jr *[]jrec
	if tail {
		jr = &si.journal
	}
	end, mf, ml, proof, err := seg.scan(si.size, jr)
	if err != nil {
		return err
	}
	si.ents, si.end, si.markF, si.markL = seg.ents.Slice(), end, mf, ml
	if n := seg.ents.Len(); n > 0 {
		si.maxSeq = si.first + uint64(n) - 1
	}
	si.maxSeq = max(si.maxSeq, ml)
	if end != si.size || end < cleanSize {
		if err := si.checkEnd(seg, end, proof, tail, cleanSize); err != nil {
			return err
		}
	}
	if !tail && !si.bad {
		si.compareIndex()
	}
	return nil
}

// checkHeader reads the size and header of the segment file f. It returns false, with no
// error, when the header settles what the segment is (si says it).
func (si *segInfo) checkHeader(f *os.File, tail bool, cleanSize int64) (fileHdr, bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileHdr{}, false, err
	}
	si.size = fi.Size()
	h, torn, err := readHeader(f, magicSeg)
	if tail && errors.Is(err, errBadMagic) && zeroHeader(f) {
		torn, err = true, nil // as Open decides: a tail created and never synced
	}
	switch {
	case errors.Is(err, ErrVersion):
		si.verError, si.idxWhy = true, err.Error()
		return fileHdr{}, false, nil
	case errors.Is(err, errBadMagic) || (torn && !tail):
		si.bad, si.why = true, "bad or missing file header"
		return fileHdr{}, false, nil
	case err != nil:
		return fileHdr{}, false, err
	case torn && cleanSize > 0:
		si.bad, si.why = true, fmt.Sprintf("tail segment holds %d bytes, but the clean shutdown left %d synced: acknowledged messages are lost", si.size, cleanSize)
		return fileHdr{}, false, nil
	case torn:
		si.torn = true
		return fileHdr{}, false, nil
	}
	return h, true, nil
}

// checkEnd decides what the bytes of seg after its intact records (which end at end) are:
// damage, preallocated zeros, or a torn tail.
func (si *segInfo) checkEnd(seg *segment, end, proof int64, tail bool, cleanSize int64) error {
	var why string
	var err error
	if end < cleanSize {
		why = fmt.Sprintf("intact records end at offset %d, but the clean shutdown left %d bytes synced: acknowledged messages are lost", end, cleanSize)
	} else if why, err = seg.damage(end, si.size, proof, tail); err != nil {
		return err
	}
	if why != "" {
		si.bad, si.why = true, why
		// The highest sequence past the damage, so that quarantine never reuses one.
		return si.maxSeqPast(seg.f, end)
	}
	if zeros, err := zeroFrom(seg.f, end, si.size); err != nil {
		return err
	} else if zeros {
		si.size = end // allocated ahead of the records (prealloc.go): nothing is torn
	} else {
		si.torn = true
	}
	return nil
}

// maxSeqPast raises si.maxSeq to the highest sequence of any intact record of f from off.
func (si *segInfo) maxSeqPast(f *os.File, off int64) error {
	data := make([]byte, si.size-off)
	if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	for p := 0; p+hdrSize <= len(data); {
		if !intactAt(data[p:], si.first) {
			p++
			continue
		}
		seq := binary.LittleEndian.Uint64(data[p+8:])
		switch binary.LittleEndian.Uint32(data[p+24:]) {
		case flagMarker:
			seq = binary.LittleEndian.Uint64(data[p+16:])
		case flagSync:
			seq = 0 // an offset, not a sequence
		}
		si.maxSeq = max(si.maxSeq, seq)
		p += hdrSize + int(binary.LittleEndian.Uint32(data[p:]))
	}
	return nil
}

// compareIndex sets si.idxWhy when the sealed segment's index file disagrees with it.
func (si *segInfo) compareIndex() {
	idx := &segment{first: si.first, base: si.base}
	if why := idx.loadIndex(si.size); why != "" {
		si.idxWhy = why
	} else if !slices.Equal(idx.ents.Slice(), si.ents) {
		si.idxWhy = fmt.Sprintf("index holds %d entries that differ from the segment's %d records", idx.ents.Len(), len(si.ents))
	}
}

// Repair fixes what Verify finds, offline (the store must not be open): it cuts torn tails
// and rebuilds indexes. Damage before the end of a file (and gaps between segments) would
// lose intact data: Repair refuses, with an error wrapping ErrCorrupt and changing nothing,
// unless opts.Quarantine is set; then it moves the damaged segment and every earlier one of
// the channel into <channel dir>/quarantine/ (First moves past them, Last is kept), and a
// damaged log is copied there and rewritten with its intact records. Files of an unknown
// format version are never touched. The returned Report lists the problems found, each
// Fixed when it was.
func Repair(dir string, opts Options) (Report, error) {
	if opts.Logger == nil {
		opts.Logger = slogDiscard()
	}
	if err := stores.CheckImportMarker(dir); err != nil { // before the lock file is made
		return Report{Dir: dir}, fmt.Errorf("filestore: %w", err)
	}
	lock, err := lockDir(dir, false)
	if err != nil {
		return Report{Dir: dir}, err
	}
	defer lock.Close()
	rep, infos, err := verify(dir)
	if err != nil {
		return rep, err
	}
	var refuse []string
	for _, p := range rep.Problems {
		if p.Kind == ProblemVersion {
			return rep, fmt.Errorf("filestore: repair %s: %w: %s", dir, ErrVersion, p)
		}
		if !p.Repairable && !opts.Quarantine {
			refuse = append(refuse, p.String())
		}
	}
	if len(refuse) > 0 {
		return rep, fmt.Errorf("filestore: repair %s refused: %w: fixing it would drop intact data; "+
			"set Options.Quarantine to move the damaged files aside: %s", dir, ErrCorrupt, strings.Join(refuse, "; "))
	}
	if infos == nil { // meta.log unreadable
		return rep, fmt.Errorf("filestore: repair %s: %w: meta.log is damaged: %s", dir, ErrCorrupt, rep.Problems[0])
	}
	o := &opts
	for i := range rep.Problems {
		p := &rep.Problems[i]
		var err error
		switch p.Kind {
		case ProblemTornTail:
			err = repairTornTail(p, o)
		case ProblemIndex:
			err = repairIndex(p, infos, o)
		case ProblemMissing:
			err = os.MkdirAll(p.File, 0o755)
		case ProblemCorrupt, ProblemGap:
			err = quarantine(&rep, p, infos, o)
		case ProblemJournal:
			err = quarantineJournal(&rep, p, infos, o)
		case ProblemStray:
			err = quarantineDir(&rep, dir, p.File)
		}
		if err != nil {
			return rep, fmt.Errorf("filestore: repair %s: %w", p.File, err)
		}
		p.Fixed = true
		opts.Logger.Warn("filestore: repaired", "problem", p.String())
	}
	if len(rep.Problems) > 0 {
		// The store is no longer what the last clean Close left: its T and L records (and the
		// clean mark) would find the repaired tails and logs damaged.
		if err := dropCleanRecords(filepath.Join(dir, "meta.log"), o); err != nil {
			return rep, fmt.Errorf("filestore: repair %s: %w", dir, err)
		}
	}
	after, _, err := verify(dir)
	if err != nil {
		return rep, err
	}
	if len(after.Problems) > 0 {
		return rep, fmt.Errorf("filestore: repair %s: problems remain: %s", dir, after.Problems[0])
	}
	rep.Channels = after.Channels
	return rep, nil
}

// dropCleanRecords rewrites meta.log without its T and L records and clean mark, if it has
// any.
func dropCleanRecords(path string, opts *Options) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	ld, err := parseLog(path, magicMeta, data)
	if err != nil || !ld.intact() {
		return nil // Verify reported it; Repair rewrote it or refused
	}
	keep := ld.recs[:0:0]
	for _, r := range ld.recs {
		if len(r) > 0 && (r[0] == metaTail || r[0] == metaSubsLog || r[0] == metaClean) {
			continue
		}
		keep = append(keep, r)
	}
	if len(keep) == len(ld.recs) {
		return nil
	}
	return writeLog(path, magicMeta, keep, opts)
}

func repairTornTail(p *Problem, opts *Options) error {
	if strings.HasSuffix(p.File, ".seg") {
		f, err := os.OpenFile(p.File, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if p.Offset < hdrSizeV1 { // torn header
			if err := f.Truncate(0); err != nil {
				return err
			}
			_, hb := newHeader(magicSeg)
			if _, err := f.WriteAt(hb, 0); err != nil {
				return err
			}
		} else if err := f.Truncate(p.Offset); err != nil {
			return err
		}
		return fsync(f, f.Name(), opts)
	}
	// A log: cut after the last intact record (an empty log if its header was torn).
	f, err := os.OpenFile(p.File, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(p.Offset); err != nil {
		return err
	}
	return fsync(f, f.Name(), opts)
}

func findSeg(infos []*chanInfo, path string) (*chanInfo, int) {
	for _, ci := range infos {
		for i, si := range ci.segs {
			if si.path == path || si.base+".idx" == path {
				return ci, i
			}
		}
	}
	return nil, -1
}

func repairIndex(p *Problem, infos []*chanInfo, opts *Options) error {
	ci, i := findSeg(infos, p.File)
	if ci == nil {
		return fmt.Errorf("no segment for index %s", p.File)
	}
	si := ci.segs[i]
	seg := &segment{first: si.first, base: si.base, ents: chunked.Of(si.ents)}
	return seg.writeIndex(opts)
}

// logLSN returns the LSN the records of a subs.log reach (0 before version 3).
func logLSN(recs [][]byte) uint64 {
	var lsn uint64
	for _, r := range recs {
		if len(r) > 0 && r[0] == subLSN {
			d := &dec{b: r[1:]}
			if n := d.uv(); !d.bad {
				lsn = max(lsn, n)
			}
		}
	}
	return lsn
}

// journalBreak returns the index of the first journal record of recs that recovery cannot
// apply after a subs.log at LSN lsn — it continues neither the log nor the record before it
// and holds no snapshot, or is malformed — and why; -1 if there is none.
func journalBreak(lsn uint64, recs []jrec) (int, string) {
	for i := range recs {
		r := &recs[i]
		if r.lsn <= lsn {
			continue
		}
		if !r.snap && r.lsn != lsn+1 {
			return i, fmt.Sprintf("journal record of LSN %d does not continue the subscriptions (LSN %d)", r.lsn, lsn)
		}
		if !eachRecord(r.body, func([]byte) {}) {
			return i, fmt.Sprintf("journal record of LSN %d is malformed", r.lsn)
		}
		lsn = r.lsn
	}
	return -1, ""
}

package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Repair's quarantine: what it moves or copies aside rather than delete (Options.Quarantine).

// quarantine moves the damaged segment (or the segments before a gap) and every earlier
// segment of its channel aside, or for a log keeps a copy and rewrites its intact records.
func quarantine(rep *Report, p *Problem, infos []*chanInfo, opts *Options) error {
	if !strings.HasSuffix(p.File, ".seg") {
		return quarantineLog(rep, p, opts)
	}
	ci, i := findSeg(infos, p.File)
	if ci == nil {
		// A tail a clean Close left that is missing: every segment of the channel goes.
		for _, c := range infos {
			if t := c.clean.tail; t != nil && segPath(c.dir, t.first)+".seg" == p.File {
				ci, i = c, len(c.segs)-1
			}
		}
		if ci == nil {
			return fmt.Errorf("segment not found")
		}
	}
	upto := i // inclusive
	if p.Kind == ProblemGap {
		upto = i - 1
	}
	qdir := filepath.Join(ci.dir, "quarantine")
	if err := os.MkdirAll(qdir, 0o755); err != nil {
		return err
	}
	var maxSeq uint64
	for j := 0; j <= upto; j++ {
		si := ci.segs[j]
		if si.path == "" { // already moved for an earlier problem
			continue
		}
		maxSeq = max(maxSeq, si.maxSeq)
		for _, ext := range []string{".seg", ".idx"} {
			src := si.base + ext
			if _, err := os.Stat(src); err != nil {
				continue
			}
			dst := freeName(qdir, filepath.Base(src))
			if err := os.Rename(src, dst); err != nil {
				return err
			}
			rep.Quarantined = append(rep.Quarantined, dst)
		}
		si.path = ""
	}
	remaining := 0
	for _, si := range ci.segs {
		if si.path != "" {
			remaining++
		}
	}
	if err := syncDir(qdir, opts); err != nil {
		return err
	}
	if remaining == 0 {
		// Keep Last: an empty segment holding only a marker (First = Last+1).
		last := max(maxSeq, ci.ch.base)
		if t := ci.clean.tail; t != nil {
			last = max(last, t.last) // what was lost with a cut tail is not reused
		}
		if err := writeMarkerSegment(ci.dir, last, opts); err != nil {
			return err
		}
	}
	return syncDir(ci.dir, opts)
}

// freeName returns the path of name in qdir, or of name.1, name.2, … if it is taken: what an
// earlier repair (or an earlier step of this one) kept there is evidence, never replaced.
func freeName(qdir, name string) string {
	dst := filepath.Join(qdir, name)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			return dst
		}
		dst = filepath.Join(qdir, fmt.Sprintf("%s.%d", name, i))
	}
}

// keepCopy writes data, a damaged log about to be rewritten, into qdir under a free name,
// durably: the rewrite that follows is fsynced, and a copy lost to a power cut with it
// would take the only evidence of what was lost.
func keepCopy(rep *Report, qdir, name string, data []byte, opts *Options) error {
	if err := os.MkdirAll(qdir, 0o755); err != nil {
		return err
	}
	dst := freeName(qdir, name)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = fsync(f, dst, opts)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	rep.Quarantined = append(rep.Quarantined, dst)
	return syncDir(qdir, opts)
}

// quarantineDir moves a stray channel directory into <store>/quarantine/ (under a name of
// its own if one is there already), where Open leaves it alone.
func quarantineDir(rep *Report, dir, path string) error {
	qdir := filepath.Join(dir, "quarantine")
	if err := os.MkdirAll(qdir, 0o755); err != nil {
		return err
	}
	dst := freeName(qdir, filepath.Base(path))
	if err := os.Rename(path, dst); err != nil {
		return err
	}
	rep.Quarantined = append(rep.Quarantined, dst)
	if err := syncDir(qdir, &Options{}); err != nil {
		return err
	}
	return syncDir(dir, &Options{})
}

func writeMarkerSegment(dir string, last uint64, opts *Options) error {
	base := segPath(dir, last+1)
	f, err := os.OpenFile(base+".seg", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [hdrSize]byte
	binary.LittleEndian.PutUint64(h[8:], last+1)
	binary.LittleEndian.PutUint64(h[16:], last)
	binary.LittleEndian.PutUint32(h[24:], flagMarker)
	binary.LittleEndian.PutUint32(h[4:], crc32Checksum(h[8:]))
	_, hb := newHeader(magicSeg)
	if _, err := f.Write(append(hb, h[:]...)); err != nil {
		return err
	}
	return fsync(f, f.Name(), opts)
}

func quarantineLog(rep *Report, p *Problem, opts *Options) error {
	magic := magicSubs
	if filepath.Base(p.File) == "meta.log" {
		magic = magicMeta
	}
	data, err := os.ReadFile(p.File)
	if errors.Is(err, os.ErrNotExist) { // a log a clean Close left, gone: an empty one
		return writeLog(p.File, magic, nil, opts)
	}
	if err != nil {
		return err
	}
	if err := keepCopy(rep, filepath.Join(filepath.Dir(p.File), "quarantine"), filepath.Base(p.File), data, opts); err != nil {
		return err
	}
	var recs [][]byte
	if h, torn, err := checkHeader(p.File, magic, data); err == nil && !torn {
		recs = salvageLog(data, h) // every intact record, past the damage too
	}
	return writeLog(p.File, magic, recs, opts)
}

// quarantineJournal copies subs.log into quarantine/ and rewrites it with the state its
// intact records and the tail's journal records up to the break recreate, stating the LSN of
// the tail's last journal record, so that recovery applies none of them again.
func quarantineJournal(rep *Report, p *Problem, infos []*chanInfo, opts *Options) error {
	ci, i := findSeg(infos, p.File)
	if ci == nil {
		return fmt.Errorf("segment not found")
	}
	journal := ci.segs[i].journal
	path := filepath.Join(ci.dir, "subs.log")
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ss := &subStore{subs: map[uint64]*sub{}}
	if len(data) > 0 {
		if err := keepCopy(rep, filepath.Join(ci.dir, "quarantine"), "subs.log", data, opts); err != nil {
			return err
		}
		if h, torn, err := checkHeader(path, magicSubs, data); err == nil && !torn {
			for _, r := range salvageLog(data, h) {
				ss.replay(r)
			}
		}
	}
	upto, _ := journalBreak(ss.lsn, journal)
	if upto < 0 {
		upto = len(journal)
	}
	if _, err := ss.applyJournal(journal[:upto], p.File); err != nil {
		return err
	}
	for _, r := range journal {
		ss.lsn = max(ss.lsn, r.lsn)
	}
	recs := [][]byte{putUv([]byte{subLSN}, ss.lsn)}
	for _, id := range slices.Sorted(mapsKeys(ss.subs)) {
		r := ss.subs[id]
		recs = append(recs, encSub(nil, subCreate, &r.state))
		pr := putUv(putUv([]byte{subPending}, id), uint64(r.pending.Len()))
		r.pending.Ascend(func(seq uint64) bool { pr = putUv(pr, seq); return true })
		recs = append(recs, pr)
	}
	return writeLog(path, magicSubs, recs, opts)
}

package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Channel directories no record of meta.log names: which Open may remove (a deleted
// channel's, an interrupted create's) and which it refuses to touch (DESIGN.md, "Channel
// directories no record names").

// deletedSuffix marks the directory of a deleted channel (DeleteChannel renames it so
// before removing it): Open removes one it finds.
const deletedSuffix = ".deleted"

// strayDir is a channel directory no channel of meta.log uses.
type strayDir struct {
	path string
	dead bool   // a deleted channel's: an X record names it, or it is renamed so
	data string // what it holds that a channel could have acknowledged ("" nothing)
}

// strayDirs returns the channel directories in dir that no channel in used refers to.
func strayDirs(dir string, used map[string]bool, dead map[uint64]bool) ([]strayDir, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []strayDir
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, name)
		if n, ok := strings.CutSuffix(name, deletedSuffix); ok && isChanDir(n) {
			out = append(out, strayDir{path: p, dead: true})
			continue
		}
		if !isChanDir(name) || used[name] {
			continue
		}
		if num, err := strconv.ParseUint(name[2:], 10, 64); err == nil && dead[num] {
			out = append(out, strayDir{path: p, dead: true})
			continue
		}
		data, err := holdsData(p)
		if err != nil {
			return nil, err
		}
		out = append(out, strayDir{path: p, data: data})
	}
	return out, nil
}

// removeStrayDirs removes the channel directories no channel refers to when that deletes
// nothing acknowledged: a deleted channel's (its X record names it, or DeleteChannel renamed
// it; a crash during DeleteChannel), or one holding no message nor subscription (a
// CreateChannel cut short). One that holds data and that meta.log does not say was deleted
// means meta.log lost records: the open is refused, naming it, and nothing is removed.
func (s *Store) removeStrayDirs() error {
	used := map[string]bool{}
	for _, ch := range s.channels {
		used[filepath.Base(s.chanDir(ch.dirNum))] = true
	}
	strays, err := strayDirs(s.dir, used, s.deadDirs)
	if err != nil {
		return err
	}
	for _, d := range strays {
		if !d.dead && d.data != "" {
			return fmt.Errorf("filestore: %w: %s holds %s, yet %s names no channel for it (records of it lost?): not opened, which would delete it; "+
				"run starling store verify %s, and starling store repair --quarantine %s to move it aside (its channel then starts again without it)",
				ErrCorrupt, d.path, d.data, filepath.Join(s.dir, "meta.log"), s.dir, s.dir)
		}
	}
	for _, d := range strays {
		p := d.path
		if d.dead && !strings.HasSuffix(p, deletedSuffix) {
			// Renamed first, as DeleteChannel does: a removal that fails half way leaves a
			// name that says what it is once the rewrite drops the X record.
			if err := renameFile(p, p+deletedSuffix, &s.opts); err != nil {
				s.opts.Logger.Warn("filestore: deleted channel's directory not removed", "dir", p, "err", err)
				continue
			}
			p += deletedSuffix
		}
		if err := removeAll(p, &s.opts); err != nil {
			s.opts.Logger.Warn("filestore: stray channel directory not removed", "dir", p, "err", err)
		}
	}
	return nil
}

// holdsData returns what the channel directory dir holds that a channel could have
// acknowledged — segments, subscriptions, or files a channel never leaves — or "" if it
// holds nothing of the kind (or does not exist).
func holdsData(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		n, p := e.Name(), filepath.Join(dir, e.Name())
		switch {
		case !e.Type().IsRegular():
			return fmt.Sprintf("%s (not a file of an empty channel)", n), nil
		case strings.HasSuffix(n, ".tmp"), strings.HasSuffix(n, ".idx"):
			// Never a channel's only copy of anything: removed or rebuilt at open.
		case strings.HasSuffix(n, ".seg"):
			fi, err := e.Info()
			if err != nil {
				return "", err
			}
			if fi.Size() > 0 {
				return "segment " + n, nil
			}
		case n == "subs.log":
			data, err := os.ReadFile(p)
			if err != nil {
				return "", err
			}
			if len(data) == 0 {
				continue
			}
			ld, err := parseLog(p, magicSubs, data)
			if err != nil {
				return "subs.log (unreadable: " + err.Error() + ")", nil
			}
			ss := &subStore{subs: map[uint64]*sub{}}
			for _, r := range ld.recs {
				ss.replay(r)
			}
			if len(ss.subs) > 0 {
				return fmt.Sprintf("subs.log with %d subscriptions", len(ss.subs)), nil
			}
		default:
			return fmt.Sprintf("%s (not a file of an empty channel)", n), nil
		}
	}
	return "", nil
}

// isChanDir reports whether name is one chanDir makes ("ch" and at least 8 digits): only
// those are the store's to remove, not another directory whose name starts with "ch".
func isChanDir(name string) bool {
	digits := strings.TrimPrefix(name, "ch")
	if len(digits) < 8 || len(digits) == len(name) {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

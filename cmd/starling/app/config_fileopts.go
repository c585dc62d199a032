package app

import (
	"math"
	"time"

	"github.com/starling-io/starling/core/conf"
	"github.com/starling-io/starling/stores/filestore"
)

// fileSettings are nats-streaming-server's FILE store options: the --file_* flags and the
// streaming { file_options { } } block. sync and auto_sync apply to the file and bolt
// stores; the slice, descriptor, recovery and buffer options to the file store.
type fileSettings struct {
	// sync: the durable stores fsync at every Sync, so a PubAck means the message is on
	// disk (--file_sync, default true); false trades that for speed: writes reach the OS
	// at every batch and survive a crash of the process, not of the machine.
	sync bool
	// autoSync: with sync false, everything written is fsynced at least this often
	// (--file_auto_sync, default 1m as nats-streaming-server; 0 or negative: never).
	autoSync time.Duration

	sliceMaxMsgs     int           // slice_max_msgs: segment roll by count (0: none)
	sliceMaxBytes    int64         // slice_max_bytes: segment size (default 64MB)
	sliceMaxAge      time.Duration // slice_max_age: segment roll by age (0: none)
	fdsLimit         int           // file_descriptors_limit: sealed segments kept open (0: 256)
	parallelRecovery int           // parallel_recovery: channels recovered at once (0: one per core)
	bufferSize       int           // buffer_size: write buffer per channel (0: 256KB)

	// ignored are the file_options keys with no meaning here, with why: logged at start.
	ignored []ignoredKey
}

type ignoredKey struct {
	at  origin
	why string
}

// fileStoreOptions maps the settings onto the file store's options.
func (fo *fileSettings) fileStoreOptions() filestore.Options {
	return filestore.Options{
		NoSync:           !fo.sync,
		AutoSync:         fo.autoSync,
		SegmentBytes:     fo.sliceMaxBytes,
		SegmentMsgs:      fo.sliceMaxMsgs,
		SegmentAge:       fo.sliceMaxAge,
		MaxOpenSegments:  fo.fdsLimit,
		ParallelRecovery: fo.parallelRecovery,
		BufferSize:       fo.bufferSize,
	}
}

// fileOnlyKeys are the file_options keys (canonical names) the bolt and memory stores
// do not use.
var fileOnlyKeys = []string{"slice_max_msgs", "slice_max_bytes", "slice_max_age",
	"file_descriptors_limit", "parallel_recovery", "buffer_size"}

// maxSliceBytes is the largest segment the file store takes.
const maxSliceBytes = 1 << 30

// fileOptions maps streaming.file_options. Every key nats-streaming-server accepts is
// accepted. Those with a meaning here are mapped; those without are logged at start as
// not used when ignoring them loses nothing a user relies on (compaction, CRC choice,
// read buffer), and rejected (file:line:col) when it would: slice_archive_script, whose
// users expect removed messages to be archived, not deleted.
func (r *fileReader) fileOptions(st *streamSettings, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	fo := &st.file
	sch := fileOptionsSchema()
	each(m, path, func(key, kpath string, e *conf.Entry) {
		fd, known := sch.lookup(key)
		if !known {
			r.unknown(e, kpath)
			return
		}
		name := fd.names[0]
		at := fileOrigin(e.KeyPos, kpath)
		ignore := func(why string) {
			if _, ok := r.reservedValue(e, kpath, fd); ok {
				fo.ignored = append(fo.ignored, ignoredKey{at, why})
			}
		}
		ok := true
		switch name {
		case "sync":
			fo.sync, ok = r.boolean(e, kpath)
		case "auto_sync":
			d, err := e.AsDuration()
			if err != nil {
				r.fail(err, e, kpath)
				return
			}
			fo.autoSync = max(d, 0) // nats-streaming-server: 0 or negative disables it
		case "slice_max_msgs":
			fo.sliceMaxMsgs, ok = r.intIn(e, kpath, 0, math.MaxInt32)
		case "slice_max_bytes":
			var n int
			n, ok = r.size(e, kpath, maxSliceBytes)
			fo.sliceMaxBytes = int64(n)
		case "slice_max_age":
			fo.sliceMaxAge, ok = r.duration(e, kpath)
		case "file_descriptors_limit":
			fo.fdsLimit, ok = r.intIn(e, kpath, 0, math.MaxInt32)
		case "parallel_recovery":
			fo.parallelRecovery, ok = r.intIn(e, kpath, 0, 1024)
		case "buffer_size":
			fo.bufferSize, ok = r.size(e, kpath, 1<<30)
		case "slice_archive_script":
			if _, ok := r.str(e, kpath); ok {
				r.p.at(e.KeyPos, kpath, "is not supported: segments removed by limits are deleted, not archived")
			}
			return
		case "crc":
			if on, ok := r.boolean(e, kpath); ok && !on {
				fo.ignored = append(fo.ignored, ignoredKey{at, "is not used: every record is CRC-checked"})
			}
		case "crc_poly":
			ignore("is not used: records are checked with CRC-32C (Castagnoli)")
		case "read_buffer_size":
			ignore("is not used: a message is read with one read of its record")
		case "compact", "compact_fragmentation", "compact_interval", "compact_min_size":
			ignore("is not used: meta.log and each channel's subscription log are compacted while the store runs, once past 4MB and twice their live size")
		}
		if ok {
			st.setAt("file."+name, at)
		}
	})
}

// fileOptionsSchema is nats-streaming-server's file_options keys (canonical name first).
func fileOptionsSchema() schema {
	return schema{
		f(kBool, "compact", "compact_enabled"),
		f(kInt, "compact_fragmentation", "compact_frag"),
		f(kInt, "compact_interval"), // seconds, an integer to nats-streaming-server
		f(kSize, "compact_min_size"),
		f(kSize, "buffer_size"),
		f(kBool, "crc", "do_crc"),
		f(kInt, "crc_poly"),
		f(kBool, "sync", "sync_on_flush", "do_sync"),
		f(kInt, "slice_max_msgs", "slice_max_count", "slice_msgs", "slice_count"),
		f(kSize, "slice_max_bytes", "slice_max_size", "slice_bytes", "slice_size"),
		f(kDuration, "slice_max_age", "slice_age", "slice_max_time", "slice_time_limit"),
		f(kString, "slice_archive_script", "slice_archive", "slice_script"),
		f(kInt, "file_descriptors_limit", "fds_limit"),
		f(kInt, "parallel_recovery"),
		f(kSize, "read_buffer_size", "file_read_buffer_size"),
		f(kDuration, "auto_sync", "file_auto_sync"),
	}
}

// buildFile checks the file options once file and flags are merged and notes what is
// not used.
func (st *streamSettings) buildFile(p *problems) {
	fo := &st.file
	for _, n := range []struct {
		key string
		bad bool
	}{
		{"slice_max_msgs", fo.sliceMaxMsgs < 0}, {"slice_max_bytes", fo.sliceMaxBytes < 0 || fo.sliceMaxBytes > maxSliceBytes},
		{"slice_max_age", fo.sliceMaxAge < 0}, {"file_descriptors_limit", fo.fdsLimit < 0},
		{"parallel_recovery", fo.parallelRecovery < 0}, {"buffer_size", fo.bufferSize < 0},
	} {
		if n.bad {
			p.add(st.origin("file."+n.key, "file_"+flagSuffix(n.key)).errorf("out of range (0 or more; slice_max_bytes at most 1GB)"))
		}
	}
	if fo.autoSync < 0 {
		fo.autoSync = 0
	}
	for _, ig := range fo.ignored {
		st.warn("%s %s", ig.at, ig.why)
	}
	if t := st.storeType(); t != storeFile && !st.off {
		for _, k := range fileOnlyKeys {
			if o, ok := st.at["file."+k]; ok {
				st.warn("%s is not used by the %s store (file store only)", o, t)
			}
		}
	}
}

// flagSuffix is the --file_* flag name of a file_options key.
func flagSuffix(key string) string {
	switch key {
	case "file_descriptors_limit":
		return "fds_limit"
	}
	return key
}

package app

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/subject"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
	stanmon "github.com/starling-io/starling/streaming/monitor"
)

// Store types (--store, streaming.store), lower-case.
const (
	storeMemory = "memory"
	storeFile   = "file"
	storeBolt   = "bolt"

	// defaultDataDir is where a durable store lives when --dir is not given.
	defaultDataDir = "./data"
)

// streamSettings is the streaming { } block and the streaming flags (nats-streaming-server's
// names). Flag definitions write the defaults; the file, then the flags given, overwrite.
type streamSettings struct {
	off     bool              // --no_streaming, enabled: false: core only
	opts    streaming.Options // ClusterID, DiscoverPrefix, HB*, IOBatchSize, ReplaceDurable (Limits: from limits, at start)
	store   string            // as written; build lower-cases it
	dir     string
	file    fileSettings // --file_*, file_options { }
	debug   bool         // -SD, sd: debug logging of the streaming layer
	trace   bool         // -SV, sv: trace logging of the streaming layer
	limits  stores.LimitsSet
	cluster stanCluster  // Raft clustering (stancluster.go)
	ns      externalNATS // -ns: streaming on an external NATS server (natsserver.go)
	account string       // the account streaming serves ("": the global one)
	nsKeys  []origin     // where the external server's credentials were written: unused without -ns

	// at is where each setting was last written (canonical key: "store", "max_msgs",
	// "channels" for the block, "channels.NAME" for an entry), for the problems build finds.
	at map[string]origin

	// reserved holds the keys of later milestones (ft_group,
	// partitioning, encrypt, …) by canonical name: read and type-checked, not used.
	reserved map[string]any
	// ignored are keys that mean nothing in-process (the credentials nats-streaming-server
	// uses to reach its NATS server), with where they were written: logged at start.
	ignored []origin

	warnings []string // built: logged at start (and by -t)
}

// newStreamSettings returns the streaming defaults that flags do not write.
func newStreamSettings() streamSettings {
	return streamSettings{at: map[string]origin{}}
}

// setAt records where key was written.
func (st *streamSettings) setAt(key string, o origin) { st.at[key] = o }

// origin returns where key was written, or a description of the default.
func (st *streamSettings) origin(key, flagName string) origin {
	if o, ok := st.at[key]; ok {
		return o
	}
	return origin{name: "default --" + flagName}
}

// storeType returns the store type, lower-case ("memory" when not set).
func (st *streamSettings) storeType() string {
	if st.store == "" {
		return storeMemory
	}
	return strings.ToLower(st.store)
}

// build checks the streaming settings once file and flags are merged. With streaming off,
// only the store's availability is not checked (a core-only run of a file written for a
// later milestone's store still starts).
func (st *streamSettings) build(p *problems, routed bool) {
	st.warnings = nil
	at := st.origin("store", "store")
	switch t := st.storeType(); t {
	case storeMemory:
		if st.dir != "" && !st.off {
			st.warn("%s: the memory store keeps nothing on disk; the directory %q is not used", st.origin("dir", "dir"), st.dir)
		}
	case storeBolt, storeFile:
		if st.dir == "" {
			st.dir = defaultDataDir
		}
	case "sql":
		p.add(at.errorf("the SQL store is not supported (stores: memory, file, bolt)"))
	default:
		p.add(at.errorf("%q is not a store type (memory, file or bolt)", st.store))
	}
	o := &st.opts
	if !validClusterID(o.ClusterID) {
		p.add(st.origin("cluster_id", "cluster_id").errorf("cluster ID %q: only letters, digits, '-' and '_' are allowed", o.ClusterID))
	}
	if dp := o.DiscoverPrefix; !subject.ValidSubject(dp) || !subject.IsLiteral(dp) {
		p.add(st.origin("discover_prefix", "discover_prefix").errorf("%q is not a valid subject without wildcards", dp))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"hb_interval", o.HBInterval}, {"hb_timeout", o.HBTimeout}} {
		if d.v < 0 {
			p.add(st.origin(d.key, d.key).errorf("duration %v is negative", d.v))
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"hb_fail_count", o.HBFailCount}, {"io_batch_size", o.IOBatchSize}} {
		if n.v < 0 {
			p.add(st.origin(n.key, n.key).errorf("%d is negative", n.v))
		}
	}
	st.buildLimits(p)
	st.buildFile(p)
	st.cluster.build(st, p, routed)
	st.ns.build(st, p)
	for _, o := range st.ignored {
		st.warn("%s is not used", o)
	}
	if st.ns.on() && st.account != "" {
		st.warn("%s is not used: on an external NATS server, streaming's account is the one its credentials log in to", st.origin("account", "account"))
	}
	if !st.ns.on() {
		for _, o := range st.nsKeys {
			st.warn("%s is not used: streaming reaches the core router in-process, without credentials (they are for nats_server_url)", o)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(st.reserved)) {
		o, ok := st.at["reserved."+k]
		if !ok {
			o = origin{name: "streaming." + k}
		}
		if k == "encrypt" && st.reserved[k] == true {
			// A warning alone let a migrated configuration keep its messages in plain text
			// where its author asked for them encrypted.
			p.add(o.errorf("is true, but Starling does not encrypt its stores: the messages would be kept in plain text; " +
				"set it false (or remove it) and encrypt the file system instead"))
			continue
		}
		st.warn("%s %s", o, reservedFor(k))
	}
}

func (st *streamSettings) warn(format string, args ...any) {
	st.warnings = append(st.warnings, fmt.Sprintf(format, args...))
}

// reservedFor says why a reserved streaming key is not used.
func reservedFor(key string) string {
	const later = "is reserved for a later milestone (%s) and not used"
	switch key {
	case "ft_group", "partitioning":
		return fmt.Sprintf(later, "fault tolerance and partitioning")
	case "ack_subs_pool_size":
		return "is not used: acknowledgements arrive on one wildcard subscription"
	case "encrypt", "encryption_cipher", "encryption_key":
		return "is not used: the stores keep messages unencrypted"
	}
	return "is not used"
}

// buildLimits checks the global limits (negative ones can only come from flags), each
// per-channel entry on its own (reported at the entry), then the whole set (the number of
// literal channels against max_channels, reported at the channels block).
func (st *streamSettings) buildLimits(p *problems) {
	g := st.limits.Global
	ok := true
	for _, l := range []struct {
		key string // and flag
		v   int64
	}{
		{"max_channels", int64(g.MaxChannels)}, {"max_subs", int64(g.MaxSubs)}, {"max_msgs", int64(g.MaxMsgs)},
		{"max_bytes", g.MaxBytes}, {"max_age", int64(g.MaxAge)}, {"max_inactivity", int64(g.MaxInactivity)},
	} {
		if l.v < 0 {
			p.add(st.origin(l.key, l.key).errorf("a global limit cannot be negative (0 is unlimited)"))
			ok = false
		}
	}
	for _, name := range slices.Sorted(maps.Keys(st.limits.Channels)) {
		one := stores.LimitsSet{Channels: map[string]stores.Limits{name: st.limits.Channels[name]}}
		if err := one.Validate(); err != nil {
			for _, e := range unjoin(err) {
				p.add(st.origin("channels."+name, "max_channels").wrap(e))
			}
			ok = false
		}
	}
	if !ok {
		return
	}
	if err := st.limits.Validate(); err != nil {
		at := st.origin("channels", "max_channels")
		for _, e := range unjoin(err) {
			p.add(at.wrap(e))
		}
	}
}

// validClusterID: what clients may use as a client ID (spec §4), which streaming also
// requires of the cluster ID.
func validClusterID(id string) bool {
	if id == "" {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// level is the streaming logger's level: the lower of the process level and -SD/-SV's.
func (st *streamSettings) level(process slog.Level) slog.Level {
	l := slog.LevelInfo
	switch {
	case st.trace:
		l = levelTrace
	case st.debug:
		l = slog.LevelDebug
	}
	return min(l, process)
}

// restartKey is what a reload may not change: everything but the log levels.
func (st *streamSettings) restartKey() any {
	file := st.file
	file.ignored = nil // where a key was written does not matter, its value does
	cluster := st.cluster
	cluster.ignored = nil
	ignored := make([]string, 0, len(st.ignored))
	for _, o := range st.ignored {
		ignored = append(ignored, o.name)
	}
	return struct {
		Off        bool
		Opts       streaming.Options
		Store, Dir string
		Limits     stores.LimitsSet
		File       fileSettings
		Cluster    stanCluster
		NS         externalNATS
		Account    string
		Reserved   map[string]any
		Ignored    []string
	}{st.off, st.opts, st.storeType(), st.dir, st.limits, file, cluster, st.ns, st.account, st.reserved, ignored}
}

// sameRestart reports whether cur and next differ only in what a reload may change.
func (st *streamSettings) sameRestart(next *streamSettings) bool {
	return reflect.DeepEqual(st.restartKey(), next.restartKey())
}

// newStore opens the store the settings name (build has refused the others); the file
// store's recovery reports to log what it cut, rebuilt or refused.
func (st *streamSettings) newStore(log *slog.Logger) (stores.Store, error) {
	switch t := st.storeType(); t {
	case storeMemory:
		return memstore.New(memstore.Options{Limits: st.limits.Clone()})
	case storeFile:
		if err := os.MkdirAll(st.dir, 0o755); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
		if err := otherStore(st.dir, storeFile); err != nil {
			return nil, err
		}
		o := st.file.fileStoreOptions()
		o.Limits, o.Logger = st.limits.Clone(), log
		return filestore.Open(st.dir, o)
	case storeBolt:
		if err := os.MkdirAll(st.dir, 0o755); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
		if err := otherStore(st.dir, storeBolt); err != nil {
			return nil, err
		}
		return boltstore.Open(filepath.Join(st.dir, "starling.db"), boltstore.Options{Limits: st.limits.Clone(),
			NoSync: !st.file.sync, AutoSync: st.file.autoSync, Logger: log})
	default:
		return nil, fmt.Errorf("store %s is not available yet", strings.ToUpper(t))
	}
}

// storeMark names the file that says a directory holds a store of a kind: Starling's file
// store, its bolt store, or nats-streaming-server's file store ("nss").
func storeMark(kind string) string {
	switch kind {
	case storeFile:
		return "meta.log"
	case storeBolt:
		return "starling.db"
	}
	return "server.dat"
}

// otherStore refuses to open a store of kind in dir when dir holds none of that kind but
// another: opening would create an empty store beside it, and the server would serve that.
func otherStore(dir, kind string) error {
	if _, err := os.Stat(filepath.Join(dir, storeMark(kind))); err == nil {
		return nil
	}
	for _, other := range []string{storeFile, storeBolt, "nss"} {
		if other == kind {
			continue
		}
		f := filepath.Join(dir, storeMark(other))
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if other == "nss" {
			return fmt.Errorf("store directory %s holds a nats-streaming-server store (%s), which Starling does not read in place: "+
				"import it into a new directory with `starling store import --from-nss %s --dir NEWDIR` and start on that", dir, f, dir)
		}
		return fmt.Errorf("store directory %s holds a %s store (%s), not a %s one: start with --store %s", dir, other, f, kind, other)
	}
	return nil
}

// startStreaming builds the store and the streaming layer over an in-process connection to
// core (named _STARLING-<cluster ID>; no client connection, so not in /connz), and starts
// it. Called by Start with m.mu held, after core has started.
func (m *Main) startStreaming(c *settings) error {
	st := &c.streaming
	if t := st.storeType(); t == storeFile || t == storeBolt {
		// Before claimDir writes into it: an unfinished import's directory is no store
		// (the file store refuses it too; the bolt store only here).
		if err := stores.CheckImportMarker(st.dir); err != nil {
			return fmt.Errorf("streaming store: %w", err)
		}
		// The marker removed by hand (as its error offers) leaves the import's temporary
		// directory, hidden, maybe holding the imported store: named at every start, never
		// removed (what it holds is the user's to judge).
		for _, p := range stores.ImportLeftovers(st.dir) {
			m.stanLog.Warn("store directory holds the temporary directory of an interrupted import: no part of the store, "+
				"it may hold what the import did not move (up to the whole store); remove it once you no longer need it", "dir", p)
		}
		nodeID := ""
		if st.cluster.on {
			nodeID = st.cluster.nodeID
			if err := claimDir(st.cluster.raftDir(st.dir), st.opts.ClusterID, nodeID); err != nil {
				return fmt.Errorf("streaming cluster: %w", err)
			}
		}
		if err := claimDir(st.dir, st.opts.ClusterID, nodeID); err != nil {
			return fmt.Errorf("streaming store: %w", err)
		}
	}
	store, err := st.newStore(m.stanLog)
	if err != nil {
		return fmt.Errorf("streaming store: %w", err)
	}
	var bus streaming.Bus
	var conn *core.Conn
	if st.ns.on() {
		if bus, m.nc, err = m.connectExternal(st); err != nil {
			return errors.Join(fmt.Errorf("streaming: %w", err), store.Close())
		}
		conn = nil
	} else {
		if conn, err = m.srv.ConnectAccount("_STARLING-"+st.opts.ClusterID, st.account); err != nil {
			return errors.Join(fmt.Errorf("streaming: %w", err), store.Close())
		}
		bus = streaming.InProcess(conn)
	}
	release := func() { // what New took, when Start is not reached
		if conn != nil {
			conn.Close()
		}
		if m.nc != nil {
			m.nc.Close()
			m.nc = nil
		}
	}
	o := st.opts
	o.Context = m.starting
	o.Logger = m.stanLog
	if st.cluster.on {
		o.NodeID = st.cluster.nodeID
	}
	o.Limits = st.limits.Clone() // streaming installs them in the store and runs age and inactivity
	newLog := streaming.LogFactory(raftlog.Standalone)
	// Clustered, core starts inside the log factory, once the raft directory has been opened
	// and checked and before raft restores its newest snapshot: a node that restores a
	// snapshot as it starts (one stopped in the middle of a catch-up) fetches the messages
	// its store lacks from the others over the routes, and its route INFO carries the raft
	// address clusterLog set. A node whose raft log is refused never opens its ports. A
	// client that connects during the restore reaches the leader over the routes, as on any
	// follower.
	if st.cluster.on {
		if newLog, err = m.clusterLog(st, c.core.Cluster, m.srv.Start); err != nil {
			release()
			return errors.Join(fmt.Errorf("streaming cluster: %w", err), store.Close())
		}
	}
	s, err := streaming.New(bus, store, newLog, o)
	if err == nil {
		err = s.Start()
	}
	if err != nil { // Shutdown is for a started server: release what New took by hand
		release()
		return errors.Join(err, store.Close())
	}
	m.conn, m.stan = conn, s
	return nil
}

// mountStreaming adds the /streaming endpoints to the monitoring server, and the streaming
// figures to its /metrics.
func (m *Main) mountStreaming(c *settings) error {
	if m.mon == nil || m.stan == nil {
		return nil
	}
	for path, h := range stanmon.New(m.stan).Routes() {
		m.mon.Handle(path, h)
	}
	m.mon.AddHealthCheck(m.stan.Health)
	return m.mon.Register(stanmon.NewCollector(m.stan))
}

package app

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/conf"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/streaming"
)

// stanCluster is the streaming layer's Raft clustering: the --cluster_* streaming flags and
// the streaming { cluster { } } block, with nats-streaming-server's names. The block, like
// --clustered, turns clustering on. Peers are node IDs: their Raft addresses are learned
// from the route mesh (streaming.go), so a node needs only its ID, its peers' IDs and the
// routes.
type stanCluster struct {
	on          bool
	nodeID      string
	nodeIDBad   bool // the config file gave one that is not a string: reported there, not again as missing
	peers       []string
	bootstrap   bool   // a group of this node alone, when no raft state exists yet
	logPath     string // "" = <dir>/raft
	logStore    string // raftlog.LogStoreSegments (""), raftlog.LogStoreBolt
	sync        bool   // fsync the raft log at every commit (default true)
	raftLogging bool   // hashicorp/raft's own log lines

	heartbeat, election, lease, commit time.Duration // 0: raftlog's defaults
	logCacheSize, logSnapshots         int
	trailingLogs, snapshotThreshold    int
	snapshotInterval                   time.Duration

	raftListen string // host:port of the raft listener; "" = the route host, a free port
	// peerAddrs are fixed raft addresses of peers ("id=host:port" each, in order), consulted
	// before the route mesh: for NAT or firewalls, where the address a peer advertises is
	// not the one to dial (and for tests that route raft traffic through a proxy).
	peerAddrs []peerAddr

	ignored []ignoredKey // accepted, not used: logged at start
}

// clusterFlags defines the streaming clustering flags (secStreamingCluster).
func (f *flags) stanCluster(s *settings) {
	st := &s.streaming
	c := &st.cluster
	tracked := func(key string, set func(string) error) func(name, v string) error {
		return func(name, v string) error {
			if err := set(v); err != nil {
				return err
			}
			st.setAt("cluster."+key, flagOrigin(name))
			return nil
		}
	}
	opt := func(name, typ, def, usage string, doc ...string) option {
		return option{names: names("--" + name), sec: secStreamingCluster, typ: typ, def: def, usage: usage, doc: strings.Join(doc, " ")}
	}
	f.addNamed(opt("clustered", "bool", "", "run streaming as a node of a Raft-replicated cluster (as does a streaming { cluster { } } block)"),
		tracked("on", setBool(&c.on)))
	f.addNamed(opt("cluster_node_id", "string", "", "this node's ID in the cluster: stable across restarts, unique among the peers"),
		tracked("node_id", setString(&c.nodeID)))
	f.addNamed(opt("cluster_peers", "string", "", "the peers' node IDs, comma-separated (this node's may be included); their addresses are learned from the routes"),
		tracked("peers", func(v string) error { c.peers = splitList(v); return nil }))
	f.addNamed(opt("cluster_bootstrap", "bool", "", "start a cluster of this node alone (instead of --cluster_peers) when it has no raft state yet",
		"Further nodes cannot be added later: give every node --cluster_peers for a cluster of several."),
		tracked("bootstrap", setBool(&c.bootstrap)))
	f.addNamed(option{names: names("--cluster_log_path"), sec: secStreamingCluster, typ: "string", arg: "<dir>", def: "<dir>/raft",
		usage: "directory of the raft log, stable store and snapshots"}, tracked("log_path", setString(&c.logPath)))
	f.addNamed(option{names: names("--cluster_log_store"), sec: secStreamingCluster, typ: "string", arg: "segments|bolt", def: "segments",
		usage: "where raft keeps its log: segments (segment files, one fdatasync per commit) or bolt (raft-boltdb's log in raft.db, two)",
		doc: "A node whose raft.db already holds its log (written by an earlier version) keeps it there either way; " +
			"bolt over an existing segment log is refused rather than started without it."},
		tracked("log_store", setString(&c.logStore)))
	c.sync = true
	f.addNamed(opt("cluster_sync", "bool", "true", "fsync the raft log before an entry counts toward a commit (false: faster, and a power loss on a majority can lose acknowledged messages)",
		"Clustered, the raft log is the write-ahead log: channel stores are written without a per-batch fsync and synced at snapshots, so `--file_sync` does not slow commits down."),
		tracked("sync", setBool(&c.sync)))
	f.addNamed(opt("cluster_raft_logging", "bool", "", "log hashicorp/raft's own messages"), tracked("raft_logging", setBool(&c.raftLogging)))
	f.addNamed(option{names: names("--cluster_raft_listen"), sec: secStreamingCluster, typ: "string", arg: "<host:port>", def: "route host, free port",
		usage: "raft's own listener (raft traffic never shares a route); peers learn its address from the routes",
		doc:   "Give a fixed port where a firewall needs one."}, tracked("raft_listen", setString(&c.raftListen)))
	f.addNamed(option{names: names("--cluster_raft_peer_addrs"), sec: secStreamingCluster, typ: "string", arg: "<id=host:port,...>",
		usage: "fixed raft addresses of peers where the route mesh cannot tell them (NAT, firewalls), comma-separated id=host:port",
		doc:   "A peer listed here is always dialled at this address; the others' addresses are learned from the routes."},
		tracked("raft_peer_addrs", func(v string) error { c.peerAddrs = nil; return c.addPeerAddrs(splitList(v)) }))
	for _, d := range []struct {
		key, def, usage string
		dst             *time.Duration
	}{
		{"raft_heartbeat_timeout", "500ms", "a follower without word from the leader this long starts an election", &c.heartbeat},
		{"raft_election_timeout", "500ms", "a candidate without a majority this long tries again", &c.election},
		{"raft_lease_timeout", "the heartbeat timeout less 1µs", "a leader without a majority this long steps down (at most the heartbeat timeout; equal to it turns the election nudge off)", &c.lease},
		{"raft_commit_timeout", "50ms", "longest wait before the commit index is sent without a new entry", &c.commit},
		{"snapshot_interval", "30s", "how often to check whether a snapshot is due", &c.snapshotInterval},
	} {
		f.addNamed(opt("cluster_"+d.key, "duration", d.def, d.usage), tracked(d.key, setDuration(d.dst)))
	}
	for _, n := range []struct {
		key, def, usage string
		dst             *int
	}{
		{"log_cache_size", "512", "recent raft entries kept in memory (at most 64 MiB of them)", &c.logCacheSize},
		{"log_snapshots", "2", "snapshots kept on disk", &c.logSnapshots},
		{"trailing_logs", "8192", "raft entries kept after a snapshot, for followers slightly behind", &c.trailingLogs},
		{"snapshot_threshold", "4096", "raft entries since the last snapshot that make a new one", &c.snapshotThreshold},
	} {
		f.addNamed(opt("cluster_"+n.key, "int", n.def, n.usage), tracked(n.key, setInt(n.dst)))
	}
	f.addNamed(opt("cluster_allow_add_remove_node", "bool", "", "accepted, not used: the peers are fixed at bootstrap"),
		tracked("allow_add_remove_node", func(v string) error {
			on, err := strconv.ParseBool(v)
			if on {
				c.ignored = append(c.ignored, ignoredKey{at: flagOrigin("cluster_allow_add_remove_node"), why: "is not used: the peers are fixed at bootstrap"})
			}
			return err
		}))
}

// peerAddr is one fixed raft address of a peer (--cluster_raft_peer_addrs).
type peerAddr struct{ id, addr string }

// addPeerAddrs parses "id=host:port" entries; build checks the IDs against the peers.
func (c *stanCluster) addPeerAddrs(entries []string) error {
	for _, e := range entries {
		id, addr, ok := strings.Cut(e, "=")
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		if !ok || id == "" {
			return fmt.Errorf("%q: want id=host:port", e)
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" || port == "0" {
			return fmt.Errorf("%q: want id=host:port with a port peers listen on", e)
		}
		c.peerAddrs = append(c.peerAddrs, peerAddr{id, addr})
	}
	return nil
}

// peerAddr returns the fixed raft address of peer id, if one is configured.
func (c *stanCluster) peerAddr(id string) (string, bool) {
	for _, p := range c.peerAddrs {
		if p.id == id {
			return p.addr, true
		}
	}
	return "", false
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// stanClusterBlock reads streaming { cluster { } }, which turns clustering on.
func (r *fileReader) stanClusterBlock(st *streamSettings, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	c := &st.cluster
	c.on = true
	st.setAt("cluster.on", fileOrigin(e.KeyPos, path))
	each(m, path, func(key, kpath string, e *conf.Entry) {
		if r.stanClusterNodeKey(st, key, kpath, e) || r.stanClusterTuningKey(st, key, kpath, e) {
			return
		}
		switch key {
		case "proceed_on_restore_failure", "allow_add_remove_node", "bolt_free_list_sync", "bolt_free_list_map", "nodes_connections":
			if _, ok := r.boolean(e, kpath); ok {
				c.ignored = append(c.ignored, ignoredKey{at: fileOrigin(e.KeyPos, kpath), why: clusterIgnoredWhy(key)})
			}
		default:
			r.unknown(e, kpath)
		}
	})
}

// stanClusterNodeKey reads a cluster key of who this node and its peers are, and where raft
// keeps its state and listens, reporting whether key is one.
func (r *fileReader) stanClusterNodeKey(st *streamSettings, key, kpath string, e *conf.Entry) bool {
	c := &st.cluster
	set := func(name string) { st.setAt("cluster."+name, fileOrigin(e.KeyPos, kpath)) }
	switch key {
	case "node_id":
		if v, ok := r.str(e, kpath); ok {
			c.nodeID = v
			set("node_id")
		} else {
			c.nodeIDBad = true
		}
	case "peers":
		c.peers = c.peers[:0]
		for _, it := range r.list(e, kpath) {
			c.peers = append(c.peers, splitList(it.s)...)
		}
		set("peers")
	case "bootstrap":
		c.bootstrap, _ = r.boolean(e, kpath)
		set("bootstrap")
	case "log_path", "raft_log_path":
		if v, ok := r.str(e, kpath); ok {
			c.logPath = v
			set("log_path")
		}
	case "log_store":
		if v, ok := r.str(e, kpath); ok {
			c.logStore = v
			set("log_store")
		}
	case "sync", "raft_sync":
		c.sync, _ = r.boolean(e, kpath)
		set("sync")
	case "raft_logging":
		c.raftLogging, _ = r.boolean(e, kpath)
	case "raft_listen":
		if host, port, ok := r.hostPort(e, kpath); ok {
			c.raftListen = host + ":" + strconv.Itoa(port)
			set("raft_listen")
		}
	case "raft_peer_addrs":
		c.peerAddrs = nil
		for _, it := range r.list(e, kpath) {
			if err := c.addPeerAddrs(splitList(it.s)); err != nil {
				r.p.at(it.pos, it.path, "%v", err)
			}
		}
		set("raft_peer_addrs")
	default:
		return false
	}
	return true
}

// stanClusterTuningKey reads a cluster key of raft's timeouts, caches and snapshots,
// reporting whether key is one.
func (r *fileReader) stanClusterTuningKey(st *streamSettings, key, kpath string, e *conf.Entry) bool {
	c := &st.cluster
	set := func(name string) { st.setAt("cluster."+name, fileOrigin(e.KeyPos, kpath)) }
	dur := func(name string, dst *time.Duration) {
		if d, ok := r.duration(e, kpath); ok {
			*dst = d
			set(name)
		}
	}
	num := func(name string, dst *int) {
		if n, ok := r.intIn(e, kpath, 0, math.MaxInt32); ok {
			*dst = n
			set(name)
		}
	}
	switch key {
	case "raft_heartbeat_timeout":
		dur("raft_heartbeat_timeout", &c.heartbeat)
	case "raft_election_timeout":
		dur("raft_election_timeout", &c.election)
	case "raft_lease_timeout":
		dur("raft_lease_timeout", &c.lease)
	case "raft_commit_timeout":
		dur("raft_commit_timeout", &c.commit)
	case "snapshot_interval":
		dur("snapshot_interval", &c.snapshotInterval)
	case "log_cache_size", "raft_log_cache_size":
		num("log_cache_size", &c.logCacheSize)
	case "log_snapshots", "raft_log_snapshots":
		num("log_snapshots", &c.logSnapshots)
	case "trailing_logs", "raft_trailing_logs":
		num("trailing_logs", &c.trailingLogs)
	case "snapshot_threshold":
		num("snapshot_threshold", &c.snapshotThreshold)
	default:
		return false
	}
	return true
}

// clusterIgnoredWhy says why a nats-streaming-server cluster key is accepted and not used.
func clusterIgnoredWhy(key string) string {
	switch key {
	case "proceed_on_restore_failure":
		return "is not used: a snapshot that cannot be restored is fetched again, never skipped"
	case "allow_add_remove_node":
		return "is not used: the peers are fixed at bootstrap"
	case "nodes_connections":
		return "is not used: raft has its own connections between the nodes, apart from the routes"
	}
	return "is not used: the raft store's bolt options are fixed"
}

// build checks the clustering settings (streamSettings.build calls it once the store is
// known); routed says whether the route mesh is configured.
func (c *stanCluster) build(st *streamSettings, p *problems, routed bool) {
	if !c.on {
		return
	}
	at := st.origin("cluster.on", "clustered")
	if t := st.storeType(); t == storeMemory {
		p.add(at.errorf("a clustered streaming server needs a file or bolt store (--store file): the memory store loses its messages at a restart and a node could not catch up"))
	}
	switch {
	case c.nodeIDBad: // reported where the file gives it
	case c.nodeID == "":
		p.add(at.errorf("a clustered streaming server needs a node ID (--cluster_node_id)"))
	case !validNodeID(c.nodeID):
		p.add(st.origin("cluster.node_id", "cluster_node_id").errorf("node ID %q: only letters, digits, '-', '_' and '.' are allowed", c.nodeID))
	}
	for _, id := range c.peers {
		if !validNodeID(id) {
			p.add(st.origin("cluster.peers", "cluster_peers").errorf("peer node ID %q: only letters, digits, '-', '_' and '.' are allowed", id))
		}
	}
	others := slices.DeleteFunc(slices.Clone(c.peers), func(id string) bool { return id == c.nodeID })
	switch {
	case c.bootstrap && len(others) > 0:
		p.add(st.origin("cluster.bootstrap", "cluster_bootstrap").errorf("bootstrap starts a cluster of this node alone: not with peers %v", others))
	case !c.bootstrap && len(others) == 0:
		p.add(at.errorf("a clustered streaming server needs its peers' node IDs (--cluster_peers), or --cluster_bootstrap for a cluster of one"))
	case len(others) > 0 && !routed:
		p.add(st.origin("cluster.peers", "cluster_peers").errorf("the peers are reached over the route mesh: configure it (--cluster and --routes, or a cluster { } block)"))
	}
	for _, pa := range c.peerAddrs {
		if pa.id == c.nodeID || !slices.Contains(c.peers, pa.id) {
			p.add(st.origin("cluster.raft_peer_addrs", "cluster_raft_peer_addrs").errorf("raft address of %q: not one of the peers %v", pa.id, others))
		}
	}
	switch c.logStore {
	case "", raftlog.LogStoreSegments, raftlog.LogStoreBolt:
	default:
		p.add(st.origin("cluster.log_store", "cluster_log_store").errorf("log store %q: want %q or %q",
			c.logStore, raftlog.LogStoreSegments, raftlog.LogStoreBolt))
	}
	if c.lease > 0 && c.heartbeat > 0 && c.lease > c.heartbeat {
		p.add(st.origin("cluster.raft_lease_timeout", "cluster_raft_lease_timeout").errorf("the lease timeout %v exceeds the heartbeat timeout %v", c.lease, c.heartbeat))
	}
	for _, k := range c.ignored {
		st.warn("%s %s", k.at, k.why)
	}
}

// validNodeID: what can name a directory and a route metadata key.
func validNodeID(id string) bool {
	if id == "" || id == "." || id == ".." {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// groupPeers is the group's voters as every node should see them: sorted, this node in.
func (c *stanCluster) groupPeers() []string {
	if c.bootstrap {
		return []string{c.nodeID}
	}
	peers := slices.Clone(c.peers)
	if !slices.Contains(peers, c.nodeID) {
		peers = append(peers, c.nodeID)
	}
	slices.Sort(peers)
	return slices.Compact(peers)
}

// raftDir is where the raft state lives.
func (c *stanCluster) raftDir(storeDir string) string {
	if c.logPath != "" {
		return c.logPath
	}
	return filepath.Join(storeDir, "raft")
}

// raftMetaKey is the route metadata key under which a node advertises its raft address:
// scoped by the raft group, then the node ID.
func raftMetaKey(group, nodeID string) string { return "stan.raft." + group + "." + nodeID }

// clusterLog returns the log factory of a clustered node: a raftlog.Node on its own TCP
// listener (raft traffic never queues behind client messages on a route, and raft's
// transport gives heartbeats their own connection), whose peers' addresses are learned from
// the route mesh. The raft group is named by the cluster ID. Called with core built, before
// it starts: the first route INFO already carries the address. The node calls beforeRaft
// (which starts core) once its raft directory has been opened and checked.
func (m *Main) clusterLog(st *streamSettings, co *core.ClusterOptions, beforeRaft func() error) (streaming.LogFactory, error) {
	c := &st.cluster
	group := st.opts.ClusterID
	listen := c.raftListen
	if listen == "" {
		host := ""
		if co != nil {
			host = co.Host
		}
		listen = net.JoinHostPort(host, "0")
	}
	var self raft.ServerAddress // raft encodes the leader's own ID into every AppendEntries
	ourPeers := strings.Join(c.groupPeers(), ",")
	var peerWarned sync.Map // mismatches logged once each
	// The last address each peer advertised: while a peer is down its route and so its
	// advertisement are gone, and raft's retries should name a refused address rather than
	// fall back to dialling the bare node ID.
	var lastKnown sync.Map
	resolve := raftlog.AddressFunc(func(id raft.ServerID) (raft.ServerAddress, error) {
		if string(id) == c.nodeID {
			return self, nil
		}
		if a, ok := c.peerAddr(string(id)); ok {
			return raft.ServerAddress(a), nil
		}
		if v, ok := m.srv.RouteMeta(raftMetaKey(group, string(id))); ok {
			addr, peers, _ := strings.Cut(v, " peers=")
			if peers != ourPeers {
				if _, seen := peerWarned.LoadOrStore(string(id)+" "+peers, true); !seen {
					m.stanLog.Error("a peer was started with other cluster peers: the nodes must all be given the same --cluster_peers",
						"peer", id, "its_peers", peers, "our_peers", ourPeers)
				}
			}
			lastKnown.Store(string(id), addr)
			return raft.ServerAddress(addr), nil
		}
		if a, ok := lastKnown.Load(string(id)); ok {
			return raft.ServerAddress(a.(string)), nil
		}
		return "", fmt.Errorf("no route peer advertises the raft address of node %q (yet)", id)
	})
	adv, err := raftAdvertise(listen, co)
	if err != nil {
		return nil, err
	}
	trans, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: listen, Advertise: adv, Resolve: resolve,
		Logger: m.stanLog, NoLog: !c.raftLogging})
	if err != nil {
		return nil, err
	}
	self = trans.LocalAddr()
	addr := string(self)
	// The address, and the peers this node was given, for the others to compare.
	m.srv.SetRouteMeta(raftMetaKey(group, c.nodeID), addr+" peers="+ourPeers)
	m.stanLog.Info("raft listening", "addr", addr, "raft_group", group, "node", c.nodeID)
	peers := c.peers
	if c.bootstrap {
		peers = nil
	}
	cfg := raftlog.Config{
		Group: group, NodeID: c.nodeID, Peers: peers, Dir: c.raftDir(st.dir),
		Transport: trans, Resolve: resolve,
		HeartbeatTimeout: c.heartbeat, ElectionTimeout: c.election, LeaderLeaseTimeout: c.lease, CommitTimeout: c.commit,
		SnapshotInterval: c.snapshotInterval, SnapshotThreshold: uint64(c.snapshotThreshold), TrailingLogs: uint64(c.trailingLogs),
		SnapshotRetain: c.logSnapshots, LogCacheSize: c.logCacheSize, LogStore: c.logStore,
		NoSync: !c.sync, Logger: m.stanLog, NoRaftLog: !c.raftLogging, BeforeStart: beforeRaft,
	}
	return func(sm raftlog.StateMachine) (raftlog.Log, error) {
		n, err := raftlog.NewNode(cfg, sm)
		if err != nil {
			return nil, err
		}
		return n, nil
	}, nil
}

// raftAdvertise is the host peers dial when raft listens on every interface: the route
// advertise host, else this machine's first address (as the routes advertise); "" when the
// listen address is a dialable one already.
func raftAdvertise(listen string, co *core.ClusterOptions) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("raft listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return "", nil
	}
	if co != nil && co.Advertise != "" {
		if h, _, err := net.SplitHostPort(co.Advertise); err == nil {
			return h, nil
		}
	}
	return core.FirstHost(), nil
}

package app

import (
	"fmt"
	"strings"
)

// fileKey is one key of the configuration file, for the configuration reference
// (docs/configuration.md). The readers (config*.go, tls.go, cluster.go) are the truth;
// TestReferenceKeysCoverTheReaders and TestReferenceKeysAreAccepted check both ways that
// this table names every key they accept.
type fileKey struct {
	path    string   // dotted; "[]" is a list element, "<channel>" any channel name or pattern
	aliases []string // other names of the last element
	typ     string   // "" with a flag: the flag's
	flag    string   // the flag setting the same thing (its long name), if any
	doc     string   // "" with a flag: the flag's usage
}

// block is the first element of the key's path: the reference's table it goes in.
func (k *fileKey) block() string {
	b, _, nested := strings.Cut(k.path, ".")
	if !nested {
		return ""
	}
	return strings.TrimSuffix(b, "[]")
}

func aka(n ...string) []string { return n }

// fileKeys is every key the configuration file takes, block by block in the order of the
// reference.
// Long on purpose: a table, one entry per key; splitting it would only scatter the reference.
func fileKeys() []fileKey {
	keys := []fileKey{
		{path: "listen", typ: "host:port", doc: "client listener: `host:port`, or a port (sets -a and -p)"},
		{path: "host", aliases: aka("net"), flag: "net"},
		{path: "port", flag: "port"},
		{path: "server_name", flag: "server_name"},
		{path: "client_advertise", flag: "client_advertise"},
		{path: "http", aliases: aka("http_port", "monitor_port"), typ: "port or host:port", flag: "http_port",
			doc: "monitoring over HTTP: a port, or `host:port` (sets --http_host too)"},
		{path: "https", aliases: aka("https_port"), typ: "port or host:port", flag: "https_port",
			doc: "monitoring over HTTPS with the `tls` block's certificate (and its client verification): a port, or `host:port`"},
		{path: "http_base_path", flag: "http_base_path"},
		{path: "prof_port", aliases: aka("profile"), flag: "profile"},
		{path: "max_payload", flag: "max_payload"},
		{path: "max_control_line", flag: "max_control_line"},
		{path: "max_connections", aliases: aka("max_conn"), flag: "max_connections"},
		{path: "max_subscriptions", aliases: aka("max_subs"), flag: "max_subscriptions"},
		{path: "max_pending", flag: "max_pending"},
		{path: "ping_interval", flag: "ping_interval"},
		{path: "ping_max", flag: "ping_max"},
		{path: "write_deadline", flag: "write_deadline"},
		{path: "lame_duck_duration", flag: "lame_duck_duration",
			doc: "time lame duck mode spreads client closes over: at least 30s, as nats-server requires of the key (shorter is refused; the flag takes it), and greater than the grace period"},
		{path: "lame_duck_grace_period", flag: "lame_duck_grace_period"},
		{path: "no_header_support", typ: "bool", doc: "refuse message headers (INFO says `headers: false`)"},
		{path: "pid_file", flag: "pid"},
		{path: "ports_file_dir", flag: "ports_file_dir"},
		{path: "logfile", aliases: aka("log_file"), flag: "log_file"},
		{path: "logfile_size_limit", aliases: aka("log_size_limit"), flag: "log_size_limit"},
		{path: "logfile_max_num", aliases: aka("log_max_num"), flag: "log_max_num"},
		{path: "log_format", flag: "log_format"},
		{path: "logtime", flag: "logtime"},
		{path: "logtime_utc", flag: "logtime_utc"},
		{path: "debug", flag: "debug"},
		{path: "trace", flag: "trace"},
		{path: "no_auth_user", flag: "no_auth_user"},
		{path: "authorization", typ: "block", doc: "client authentication: a single `user` and `password`, or a `token`, or a `users` list; and permissions"},
		{path: "accounts", typ: "block of blocks", doc: "accounts, each `NAME { users, exports, imports }` with its own subject space (nats-server v2); clients whose user is in no account use the global account `$G`"},
		{path: "system_account", typ: "string", doc: "the account whose users may send the `$SYS.REQ.SERVER.…` requests of `nats server ping|list|info|report` (default `$SYS`, with or without accounts, created empty if not configured)"},
		{path: "no_system_account", typ: "bool", doc: "no default system account `$SYS` (nats-server's): without `system_account`, no `$SYS.REQ` requests and no events"},
		{path: "allow_non_tls", typ: "bool", doc: "with the `tls` block: TLS optional on the client port (INFO says `tls_available`); a client may upgrade to TLS or stay in plaintext"},
		{path: "tls", typ: "block", doc: "TLS for clients (and HTTPS monitoring); TLS 1.2 at least, 1.3 preferred"},
		{path: "cluster", typ: "block", doc: "the route mesh; the cluster flags win over it"},
		{path: "streaming", typ: "block", doc: "the streaming layer, with nats-streaming-server's keys (only inside this block); the streaming flags win over it"},

		{path: "authorization.user", aliases: aka("username"), flag: "user"},
		{path: "authorization.password", aliases: aka("pass"), flag: "pass"},
		{path: "authorization.token", flag: "auth"},
		{path: "authorization.timeout", typ: "duration", doc: "time a client has to send CONNECT (default 2s; with TLS, the TLS timeout plus 1s instead)"},
		{path: "authorization.users", typ: "list of blocks", doc: "users, each `{user, password, permissions}` or `{nkey, permissions}`; not with `user` or `token`"},
		{path: "authorization.users[].user", aliases: aka("username"), typ: "string", doc: "user name"},
		{path: "authorization.users[].password", aliases: aka("pass"), typ: "string",
			doc: "plain text (a warning at start) or a bcrypt hash; `password: \"\"` allows an empty one. Needed unless the user has an `nkey` or `tls.verify_and_map` maps certificates to users"},
		{path: "authorization.users[].nkey", typ: "string", doc: "public user NKey (56 characters starting with U): the client signs the server's nonce with its seed"},
		{path: "authorization.users[].permissions", aliases: aka("permission", "authorization"), typ: "block", doc: "the user's permissions (below); a `$variable` may share them between users"},
		{path: "authorization.default_permissions", aliases: aka("default_permission", "permissions"), typ: "block", doc: "permissions of the users without their own"},

		{path: "accounts.<account>.users", typ: "list of blocks", doc: "the account's users, each as in `authorization.users` (user names and nkeys are unique across all accounts)"},
		{path: "accounts.<account>.exports", typ: "list of blocks", doc: "what other accounts may import: `{stream: SUBJECT}` or `{service: SUBJECT}`"},
		{path: "accounts.<account>.exports[].stream", typ: "string", doc: "subjects (wildcards allowed) whose messages other accounts may receive"},
		{path: "accounts.<account>.exports[].service", typ: "string", doc: "subjects (wildcards allowed) other accounts may send requests to; replies go back to the requester"},
		{path: "accounts.<account>.exports[].accounts", typ: "list", doc: "the accounts that may import it; absent: every account (public)"},
		{path: "accounts.<account>.exports[].response_type", aliases: aka("response"), typ: "string",
			doc: "a service's replies: `singleton` (default, one reply per request), `stream` or `chunked` (several, until `response_threshold`)"},
		{path: "accounts.<account>.exports[].response_threshold", aliases: aka("threshold"), typ: "duration",
			doc: "how long a request's reply subject serves (default 2m)"},
		{path: "accounts.<account>.imports", typ: "list of blocks", doc: "what the account takes from others' exports: `{stream: {account, subject}, prefix | to}` or `{service: {account, subject}, to}`; an import of what is not exported to the account, or one that loops back, is refused"},
		{path: "accounts.<account>.imports[].stream", typ: "block", doc: "`{account: NAME, subject: SUBJECT}`: receive the exporter's messages on SUBJECT"},
		{path: "accounts.<account>.imports[].stream.account", typ: "string", doc: "the exporting account"},
		{path: "accounts.<account>.imports[].stream.subject", typ: "string", doc: "the exported subject (or a narrower one)"},
		{path: "accounts.<account>.imports[].service", typ: "block", doc: "`{account: NAME, subject: SUBJECT}`: send requests to the exporter's service"},
		{path: "accounts.<account>.imports[].service.account", typ: "string", doc: "the exporting account"},
		{path: "accounts.<account>.imports[].service.subject", typ: "string", doc: "the exported subject (or a narrower one)"},
		{path: "accounts.<account>.imports[].prefix", typ: "string", doc: "a stream's messages appear under `PREFIX.SUBJECT`"},
		{path: "accounts.<account>.imports[].to", typ: "string",
			doc: "the subject in this account, with the wildcards of `subject` in order: where a stream's messages appear, or where clients send a service's requests (default `subject`)"},

		{path: "permissions.publish", aliases: aka("pub", "import"), typ: "list or block",
			doc: "subjects a user may publish to: a subject or a list (the allow list), or `{allow, deny}`; an empty `allow: []` is no allow list"},
		{path: "permissions.publish.allow", typ: "list", doc: "subjects allowed (wildcards allowed)"},
		{path: "permissions.publish.deny", typ: "list", doc: "subjects denied, over the allowed ones"},
		{path: "permissions.subscribe", aliases: aka("sub", "export"), typ: "list or block",
			doc: "subjects a user may subscribe to, as `publish`; an entry may be `\"subject queue\"` to allow only that queue group"},
		{path: "permissions.subscribe.allow", typ: "list", doc: "subjects (or `\"subject queue\"`) allowed"},
		{path: "permissions.subscribe.deny", typ: "list", doc: "subjects (or `\"subject queue\"`) denied"},
		{path: "permissions.allow_responses", aliases: aka("publish_allow_responses"), typ: "bool or block",
			doc: "`true`, or `{max, expires}`: the user may publish to the reply subject of a request it received, even where `publish` does not allow it"},
		{path: "permissions.allow_responses.max", aliases: aka("max_msgs", "max_messages", "max_responses"), typ: "int",
			doc: "replies allowed per request (default 1; negative: unlimited)"},
		{path: "permissions.allow_responses.expires", aliases: aka("expiration", "ttl"), typ: "duration",
			doc: "how long after the request a reply is allowed (default 2m; negative: no limit)"},

		{path: "tls.cert_file", flag: "tlscert"},
		{path: "tls.key_file", flag: "tlskey"},
		{path: "tls.ca_file", flag: "tlscacert"},
		{path: "tls.verify", flag: "tlsverify"},
		{path: "tls.verify_and_map", typ: "bool", doc: "verify client certificates and log each client in as the user of `authorization.users` named by its certificate: the subject (RFC 2253), an e-mail address, a DNS name or the common name; that user needs no password"},
		{path: "tls.handshake_first", aliases: aka("first", "immediate"), typ: "bool, auto or duration",
			doc: "the TLS handshake comes before INFO (nats.go's `TLSHandshakeFirst()`); a client that does not start with TLS is closed. `auto` or a duration: a client silent that long (auto: 50ms) gets INFO first, as without it"},
		{path: "tls.timeout", typ: "duration", doc: "time the TLS handshake may take (default 2s)"},
		{path: "tls.cipher_suites", typ: "list", doc: "TLS 1.2 cipher suites by Go's crypto/tls names (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); insecure ones are refused"},
		{path: "tls.curve_preferences", typ: "list", doc: "key exchanges by Go's crypto/tls names (X25519, CurveP256, X25519MLKEM768, …)"},

		{path: "cluster.name", flag: "cluster_name"},
		{path: "cluster.listen", typ: "host:port", flag: "cluster", doc: "route listener: `host:port` (port -1: random); turns clustering on"},
		{path: "cluster.host", aliases: aka("net"), typ: "string", doc: "route listen host"},
		{path: "cluster.port", typ: "port", doc: "route listen port"},
		{path: "cluster.routes", flag: "routes", typ: "list", doc: "routes to dial: `nats://[user:pass@]HOST:PORT`, the seeds of the mesh; a configured route is retried with backoff until shutdown"},
		{path: "cluster.authorization", typ: "block", doc: "what routes must present"},
		{path: "cluster.authorization.user", aliases: aka("username"), typ: "string", doc: "user routes log in as (also what this server dials with, unless the route URL has its own)"},
		{path: "cluster.authorization.password", aliases: aka("pass"), typ: "string", doc: "its password"},
		{path: "cluster.authorization.token", typ: "string", doc: "refused: routes authenticate with user and password, or TLS"},
		{path: "cluster.authorization.timeout", typ: "duration", doc: "time a route has to send CONNECT (default 2s)"},
		{path: "cluster.tls", typ: "block", doc: "TLS for routes, with the keys of `tls`: the same certificate on both ends, each verifying the other against `ca_file`"},
		{path: "cluster.advertise", aliases: aka("cluster_advertise"), flag: "cluster_advertise"},
		{path: "cluster.no_advertise", flag: "no_advertise"},
		{path: "cluster.pool_size", typ: "int", doc: "not used (a warning): servers keep one route connection per pair"},
		{path: "cluster.connect_retries", typ: "int", doc: "not used (a warning): a configured route is retried until shutdown, a gossiped one 3 times"},
		{path: "cluster.ping_interval", typ: "duration", doc: "not used (a warning): routes are pinged at the server's `ping_interval`, at most every 30s"},
		{path: "cluster.ping_max", typ: "int", doc: "not used (a warning): routes use the server's `ping_max`"},

		{path: "streaming.enabled", typ: "bool", flag: "no_streaming", doc: "`false` runs the core router only (as --no_streaming); default true"},
		{path: "streaming.cluster_id", aliases: aka("id", "cid", "clusterid"), flag: "cluster_id"},
		{path: "streaming.discover_prefix", aliases: aka("discoverprefix"), flag: "discover_prefix"},
		{path: "streaming.store", aliases: aka("st", "store_type", "storetype"), flag: "store"},
		{path: "streaming.dir", aliases: aka("datastore", "file_store_dir"), flag: "dir"},
		{path: "streaming.stan_debug", aliases: aka("sd"), flag: "stan_debug"},
		{path: "streaming.stan_trace", aliases: aka("sv"), flag: "stan_trace"},
		{path: "streaming.hb_interval", aliases: aka("hbi", "server_to_client_hb_interval"), flag: "hb_interval"},
		{path: "streaming.hb_timeout", aliases: aka("hbt", "server_to_client_hb_timeout"), flag: "hb_timeout"},
		{path: "streaming.hb_fail_count", aliases: aka("hbf", "server_to_client_hb_fail_count"), flag: "hb_fail_count"},
		{path: "streaming.io_batch_size", flag: "io_batch_size"},
		{path: "streaming.replace_durable", aliases: aka("replace_durables", "replace_duplicate_durable", "replace_duplicate_durables"), flag: "replace_durable"},
		{path: "streaming.max_clients", flag: "max_clients"},
		{path: "streaming.cluster", typ: "block", doc: "Raft clustering of the streaming layer; the block turns it on (as --clustered)"},
		{path: "streaming.cluster.node_id", flag: "cluster_node_id"},
		{path: "streaming.cluster.peers", typ: "string or list", flag: "cluster_peers"},
		{path: "streaming.cluster.bootstrap", flag: "cluster_bootstrap"},
		{path: "streaming.cluster.log_path", aliases: aka("raft_log_path"), flag: "cluster_log_path"},
		{path: "streaming.cluster.log_store", flag: "cluster_log_store"},
		{path: "streaming.cluster.sync", aliases: aka("raft_sync"), flag: "cluster_sync"},
		{path: "streaming.cluster.raft_logging", flag: "cluster_raft_logging"},
		{path: "streaming.cluster.raft_listen", typ: "host:port", flag: "cluster_raft_listen"},
		{path: "streaming.cluster.raft_peer_addrs", typ: "string or list", flag: "cluster_raft_peer_addrs"},
		{path: "streaming.cluster.raft_heartbeat_timeout", flag: "cluster_raft_heartbeat_timeout"},
		{path: "streaming.cluster.raft_election_timeout", flag: "cluster_raft_election_timeout"},
		{path: "streaming.cluster.raft_lease_timeout", flag: "cluster_raft_lease_timeout"},
		{path: "streaming.cluster.raft_commit_timeout", flag: "cluster_raft_commit_timeout"},
		{path: "streaming.cluster.snapshot_interval", flag: "cluster_snapshot_interval"},
		{path: "streaming.cluster.log_cache_size", aliases: aka("raft_log_cache_size"), flag: "cluster_log_cache_size"},
		{path: "streaming.cluster.log_snapshots", aliases: aka("raft_log_snapshots"), flag: "cluster_log_snapshots"},
		{path: "streaming.cluster.trailing_logs", aliases: aka("raft_trailing_logs"), flag: "cluster_trailing_logs"},
		{path: "streaming.cluster.snapshot_threshold", flag: "cluster_snapshot_threshold"},
		{path: "streaming.cluster.allow_add_remove_node", flag: "cluster_allow_add_remove_node"},
		{path: "streaming.cluster.proceed_on_restore_failure", typ: "bool", doc: "not used (a warning): " + clusterIgnoredWhy("proceed_on_restore_failure")[len("is not used: "):]},
		{path: "streaming.cluster.nodes_connections", typ: "bool", doc: "not used (a warning): " + clusterIgnoredWhy("nodes_connections")[len("is not used: "):]},
		{path: "streaming.cluster.bolt_free_list_sync", typ: "bool", doc: "not used (a warning): " + clusterIgnoredWhy("bolt_free_list_sync")[len("is not used: "):]},
		{path: "streaming.cluster.bolt_free_list_map", typ: "bool", doc: "not used (a warning): " + clusterIgnoredWhy("bolt_free_list_map")[len("is not used: "):]},
		{path: "streaming.store_limits", aliases: aka("limits", "storelimits"), typ: "block", doc: "channel limits: the global ones (0: unlimited) and `channels`"},
		{path: "streaming.store_limits.max_channels", aliases: aka("mc", "maxchannels"), flag: "max_channels"},
		{path: "streaming.store_limits.max_msgs", aliases: aka("mm", "maxmsgs", "max_count", "maxcount"), flag: "max_msgs"},
		{path: "streaming.store_limits.max_bytes", aliases: aka("mb", "maxbytes"), flag: "max_bytes"},
		{path: "streaming.store_limits.max_age", aliases: aka("ma", "maxage"), flag: "max_age"},
		{path: "streaming.store_limits.max_subs", aliases: aka("max_subscriptions", "msu", "maxsubs", "maxsubscriptions"), flag: "max_subs"},
		{path: "streaming.store_limits.max_inactivity", aliases: aka("mi", "maxinactivity"), flag: "max_inactivity"},
		{path: "streaming.store_limits.channels", aliases: aka("channels_limits", "channelslimits", "per_channel", "per_channel_limits", "perchannel", "perchannellimits"), typ: "block of blocks",
			doc: "per-channel limits: `{ \"NAME or wildcard\": { limits } }`, with the keys of the global limits but `max_channels`. Literal names count against `max_channels`"},
	}
	for _, l := range []struct {
		key     string
		aliases []string
		typ     string
	}{
		{"max_msgs", aka("mm", "maxmsgs", "max_count", "maxcount"), "int"}, {"max_bytes", aka("mb", "maxbytes"), "size"},
		{"max_age", aka("ma", "maxage"), "duration"}, {"max_subs", aka("max_subscriptions", "msu", "maxsubs", "maxsubscriptions"), "int"},
		{"max_inactivity", aka("mi", "maxinactivity"), "duration"},
	} {
		keys = append(keys, fileKey{path: "streaming.store_limits.channels.<channel>." + l.key, aliases: l.aliases, typ: l.typ,
			doc: "as the global `" + l.key + "`, for the channels the entry matches: 0 inherits from the closest wildcard entry that matches the name (else the global limit), a negative value is unlimited"})
	}
	keys = append(keys, []fileKey{
		{path: "streaming.file_options", aliases: aka("file"), typ: "block", doc: "nats-streaming-server's file store options; the --file_* flags win over them"},
		{path: "streaming.file_options.buffer_size", flag: "file_buffer_size"},
		{path: "streaming.file_options.sync", aliases: aka("sync_on_flush", "do_sync"), flag: "file_sync"},
		{path: "streaming.file_options.slice_max_msgs", aliases: aka("slice_max_count", "slice_msgs", "slice_count"), flag: "file_slice_max_msgs"},
		{path: "streaming.file_options.slice_max_bytes", aliases: aka("slice_max_size", "slice_bytes", "slice_size"), flag: "file_slice_max_bytes"},
		{path: "streaming.file_options.slice_max_age", aliases: aka("slice_age", "slice_max_time", "slice_time_limit"), flag: "file_slice_max_age"},
		{path: "streaming.file_options.file_descriptors_limit", aliases: aka("fds_limit"), flag: "file_fds_limit"},
		{path: "streaming.file_options.parallel_recovery", flag: "file_parallel_recovery"},
		{path: "streaming.file_options.auto_sync", aliases: aka("file_auto_sync"), flag: "file_auto_sync", doc: "with `sync: false`, fsync what was written at least this often (0 or negative: never)"},
		{path: "streaming.file_options.slice_archive_script", aliases: aka("slice_archive", "slice_script"), typ: "string",
			doc: "refused: segments removed by limits are deleted, not archived"},
		{path: "streaming.file_options.crc", aliases: aka("do_crc"), typ: "bool", doc: "`false` is not used (a warning): every record is CRC-checked"},
		{path: "streaming.file_options.crc_poly", typ: "int", doc: "not used (a warning): records are checked with CRC-32C (Castagnoli)"},
		{path: "streaming.file_options.read_buffer_size", aliases: aka("file_read_buffer_size"), typ: "size", doc: "not used (a warning): a message is read with one read of its record"},
		{path: "streaming.file_options.compact", aliases: aka("compact_enabled"), typ: "bool", doc: "not used (a warning): meta.log and each channel's subscription log are compacted while the store runs, once past 4MB and twice their live size"},
		{path: "streaming.file_options.compact_fragmentation", aliases: aka("compact_frag"), typ: "int", doc: "not used (a warning), as `compact`"},
		{path: "streaming.file_options.compact_interval", typ: "int", doc: "not used (a warning), as `compact` (seconds, a number as in nats-streaming-server)"},
		{path: "streaming.file_options.compact_min_size", typ: "size", doc: "not used (a warning), as `compact`"},
		{path: "streaming.sql_options", aliases: aka("sql"), typ: "block", doc: "refused: the SQL store is not supported"},
		{path: "streaming.nats_server_url", aliases: aka("ns", "nats_server"), flag: "nats_server"},
		{path: "streaming.account", typ: "string", doc: "the account streaming serves (default the global account, `$G`): its subjects (`_STAN.>`, the discover prefix) live in that account's subject space, and clients of other accounts reach streaming only through imports of them; with `nats_server_url`, not used (a warning): the credentials decide the account"},
	}...)
	const credential = "with `nats_server_url`: %s for the connection to the external NATS server; without it, not used (a warning)"
	for _, k := range []struct {
		fileKey
		what string
	}{
		{fileKey{path: "streaming.username", aliases: aka("user"), typ: "string"}, "the user"},
		{fileKey{path: "streaming.password", aliases: aka("pass"), typ: "string"}, "the password"},
		{fileKey{path: "streaming.token", typ: "string"}, "the token"},
		{fileKey{path: "streaming.nkey_seed_file", typ: "string"}, "the NKey seed file"},
		{fileKey{path: "streaming.credentials", typ: "string"}, "the credentials (JWT) file"},
		{fileKey{path: "streaming.secure", typ: "bool"}, "TLS (with the system's CAs)"},
		{fileKey{path: "streaming.tls", typ: "block"}, "TLS (the keys below, nats-streaming-server's),"},
		{fileKey{path: "streaming.tls.client_cert", aliases: aka("cert_file"), typ: "string"}, "a client certificate (PEM; with `client_key`)"},
		{fileKey{path: "streaming.tls.client_key", aliases: aka("key_file"), typ: "string"}, "the client certificate's key"},
		{fileKey{path: "streaming.tls.client_ca", aliases: aka("client_cacert", "ca_file"), typ: "string"}, "the CAs (PEM) the server's certificate is checked against (default the system's)"},
		{fileKey{path: "streaming.tls.server_name", typ: "string"}, "the name the server's certificate must carry (default the URL's host)"},
		{fileKey{path: "streaming.tls.insecure", typ: "bool"}, "no check of the server's certificate"},
	} {
		k.doc = fmt.Sprintf(credential, k.what)
		keys = append(keys, k.fileKey)
	}
	keys = append(keys, fileKey{path: "streaming.syslog_name", typ: "string", doc: "accepted and not used (a warning)"})
	// The keys of later milestones, straight from their schema.
	for _, fd := range streamingReservedSchema() {
		doc := "accepted and type-checked; it " + reservedFor(fd.names[0]) + " (a warning at start)"
		if fd.names[0] == "encrypt" {
			doc = "`false` is accepted; `true` is refused: the stores do not encrypt, and the messages would be kept in plain text (encrypt the file system instead)"
		}
		keys = append(keys, fileKey{path: "streaming." + fd.names[0], aliases: fd.names[1:], typ: fd.kind.String(), doc: doc})
		for _, sub := range fd.keys {
			keys = append(keys, fileKey{path: "streaming." + fd.names[0] + "." + sub.names[0], aliases: sub.names[1:], typ: sub.kind.String(),
				doc: "reserved with `streaming." + fd.names[0] + "`"})
		}
	}
	return keys
}

// String names a schema kind in the reference.
func (k kind) String() string {
	switch k {
	case kString, kName:
		return "string"
	case kInt:
		return "int"
	case kPort:
		return "port"
	case kSize:
		return "size"
	case kBool:
		return "bool"
	case kDuration, kSeconds, kTimeout:
		return "duration"
	case kStrings:
		return "list"
	case kAddr:
		return "host:port"
	case kMap, kTLS:
		return "block"
	case kMapOf:
		return "block of blocks"
	}
	return "?"
}

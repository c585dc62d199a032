package app

import (
	"math"
	"time"

	"github.com/starling-io/starling/core/conf"
	"github.com/starling-io/starling/stores"
)

// streamingBlock maps the streaming { } block: nats-streaming-server's keys and aliases
// (compared lower-case, so MaxMsgs is max_msgs's alias maxmsgs). The keys of later
// milestones are read against streamingReservedSchema and kept, unused.
func (r *fileReader) streamingBlock(s *settings, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	st := &s.streaming
	each(m, path, func(key, kpath string, e *conf.Entry) {
		if r.streamingServerKey(st, key, kpath, e) || r.streamingNATSKey(st, key, kpath, e) {
			return
		}
		r.streamingReservedKey(st, key, kpath, e)
	})
}

// streamingString reads a string key into dst, recording where key was set.
func (r *fileReader) streamingString(st *streamSettings, dst *string, key string, e *conf.Entry, kpath string) {
	if v, ok := r.str(e, kpath); ok {
		*dst = v
		st.setAt(key, fileOrigin(e.KeyPos, kpath))
	}
}

// streamingServerKey reads a key of the streaming server itself (identity, store, client
// heartbeats and limits), reporting whether key is one.
func (r *fileReader) streamingServerKey(st *streamSettings, key, kpath string, e *conf.Entry) bool {
	o := &st.opts
	switch key {
	case "enabled":
		if on, ok := r.boolean(e, kpath); ok {
			st.off = !on
		}
	case "id", "cid", "cluster_id", "clusterid":
		r.streamingString(st, &o.ClusterID, "cluster_id", e, kpath)
	case "discover_prefix", "discoverprefix":
		r.streamingString(st, &o.DiscoverPrefix, "discover_prefix", e, kpath)
	case "store", "st", "store_type", "storetype":
		r.streamingString(st, &st.store, "store", e, kpath)
	case "dir", "datastore", "file_store_dir":
		r.streamingString(st, &st.dir, "dir", e, kpath)
	case "sd", "stan_debug":
		st.debug, _ = r.boolean(e, kpath)
	case "sv", "stan_trace":
		st.trace, _ = r.boolean(e, kpath)
	case "hb_interval", "hbi", "server_to_client_hb_interval":
		o.HBInterval, _ = r.duration(e, kpath)
	case "hb_timeout", "hbt", "server_to_client_hb_timeout":
		o.HBTimeout, _ = r.duration(e, kpath)
	case "hb_fail_count", "hbf", "server_to_client_hb_fail_count":
		o.HBFailCount, _ = r.intIn(e, kpath, 0, math.MaxInt32)
	case "io_batch_size":
		o.IOBatchSize, _ = r.intIn(e, kpath, 0, math.MaxInt32)
	case "replace_durable", "replace_durables", "replace_duplicate_durable", "replace_duplicate_durables":
		o.ReplaceDurable, _ = r.boolean(e, kpath)
	case "max_clients":
		o.MaxClients, _ = r.intIn(e, kpath, -1, math.MaxInt32)
	case "store_limits", "limits", "storelimits":
		r.storeLimits(st, e, kpath)
	case "cluster":
		r.stanClusterBlock(st, e, kpath)
	case "file_options", "file":
		r.fileOptions(st, e, kpath)
	case "sql_options", "sql":
		r.p.at(e.KeyPos, kpath, "the SQL store is not supported (stores: memory, file, bolt)")
	case "account":
		r.streamingString(st, &st.account, "account", e, kpath)
	default:
		return false
	}
	return true
}

// streamingNATSKey reads a key of the connection to an external NATS server (-ns): its URL,
// credentials and TLS, reporting whether key is one.
func (r *fileReader) streamingNATSKey(st *streamSettings, key, kpath string, e *conf.Entry) bool {
	switch key {
	case "nats_server_url", "ns", "nats_server":
		r.streamingString(st, &st.ns.url, "nats_server_url", e, kpath)
	case "username", "user", "password", "pass", "token", "nkey_seed_file", "credentials", "syslog_name":
		v, ok := r.str(e, kpath)
		if !ok {
			break
		}
		switch key {
		case "username", "user":
			st.ns.user = v
		case "password", "pass":
			st.ns.pass = v
		case "token":
			st.ns.token = v
		case "nkey_seed_file":
			st.ns.nkeySeedFile = v
		case "credentials":
			st.ns.credsFile = v
		default: // syslog_name
			st.ignored = append(st.ignored, fileOrigin(e.KeyPos, kpath))
			return true
		}
		st.nsKeys = append(st.nsKeys, fileOrigin(e.KeyPos, kpath))
	case "secure": // a boolean in nats-streaming-server
		if on, ok := r.boolean(e, kpath); ok {
			if on && st.ns.tls == nil {
				st.ns.tls = &tlsSettings{on: true}
			}
			st.nsKeys = append(st.nsKeys, fileOrigin(e.KeyPos, kpath))
		}
	case "tls":
		if t, ok := r.nsTLSBlock(st, e, kpath); ok {
			st.ns.tls = &t
			st.nsKeys = append(st.nsKeys, fileOrigin(e.KeyPos, kpath))
		}
	default:
		return false
	}
	return true
}

// streamingReservedKey reads a key of a later milestone (streamingReservedSchema) and
// keeps it, unused; any other key is unknown.
func (r *fileReader) streamingReservedKey(st *streamSettings, key, kpath string, e *conf.Entry) {
	fd, known := streamingReservedSchema().lookup(key)
	if !known {
		r.unknown(e, kpath)
		return
	}
	if v, ok := r.reservedValue(e, kpath, fd); ok {
		if st.reserved == nil {
			st.reserved = map[string]any{}
		}
		st.reserved[fd.names[0]] = v
		st.setAt("reserved."+fd.names[0], fileOrigin(e.KeyPos, kpath))
	}
}

// isStreamingKey reports a key of the streaming block that nats-streaming-server also
// accepts at the top level; Starling reads it only inside streaming { }.
func isStreamingKey(key string) bool {
	switch key {
	case "cid", "cluster_id", "clusterid", "discover_prefix", "discoverprefix", "store", "st", "store_type",
		"storetype", "dir", "datastore", "file_store_dir", "sd", "sv", "stan_debug", "stan_trace",
		"hb_interval", "hbi", "server_to_client_hb_interval", "hb_timeout", "hbt", "server_to_client_hb_timeout",
		"hb_fail_count", "hbf", "server_to_client_hb_fail_count", "io_batch_size", "replace_durable",
		"replace_durables", "replace_duplicate_durable", "replace_duplicate_durables", "store_limits",
		"storelimits", "file_options", "sql_options", "ft_group", "ft_group_name", "partitioning",
		"nats_server_url", "ns", "nats_server":
		return true
	}
	return false
}

// storeLimits maps store_limits: the global limits (0 = unlimited) and channels { }.
func (r *fileReader) storeLimits(st *streamSettings, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	g := &st.limits.Global
	each(m, path, func(key, kpath string, e *conf.Entry) {
		at := fileOrigin(e.KeyPos, kpath)
		switch key {
		case "max_channels", "mc", "maxchannels":
			g.MaxChannels, _ = r.intIn(e, kpath, 0, math.MaxInt32)
			st.setAt("max_channels", at)
		case "channels", "channels_limits", "channelslimits", "per_channel", "per_channel_limits", "perchannel", "perchannellimits":
			r.channelLimits(st, e, kpath)
		default:
			if !r.limit(g, key, kpath, e, false) {
				r.unknown(e, kpath)
			}
		}
	})
}

// channelLimits maps store_limits.channels: one block of limits per channel name or
// wildcard pattern. In an entry 0 inherits and a negative value means unlimited.
func (r *fileReader) channelLimits(st *streamSettings, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	st.setAt("channels", fileOrigin(e.KeyPos, path))
	if st.limits.Channels == nil {
		st.limits.Channels = map[string]stores.Limits{}
	}
	eachName(m, path, func(cpath string, ce *conf.Entry) {
		name := ce.Key // channel names keep their case
		cm, ok := r.mapOf(ce, cpath)
		if !ok {
			return
		}
		var l stores.Limits
		each(cm, cpath, func(key, kpath string, e *conf.Entry) {
			switch {
			case key == "max_channels" || key == "mc" || key == "maxchannels":
				r.p.at(e.KeyPos, kpath, "max_channels is a global limit: it cannot be set per channel")
			case !r.limit(&l, key, kpath, e, true):
				r.unknown(e, kpath)
			}
		})
		st.limits.Channels[name] = l
		st.setAt("channels."+name, fileOrigin(ce.KeyPos, cpath))
	})
}

// limit reads one channel limit into l, reporting whether key is one. Global limits are
// 0 or more; per-channel ones may be negative (unlimited).
func (r *fileReader) limit(l *stores.Limits, key, path string, e *conf.Entry, perChannel bool) bool {
	lo := int64(0)
	if perChannel {
		lo = math.MinInt32
	}
	switch key {
	case "max_msgs", "mm", "maxmsgs", "max_count", "maxcount":
		l.MaxMsgs, _ = r.intIn(e, path, lo, math.MaxInt)
	case "max_bytes", "mb", "maxbytes":
		n, err := e.AsSize()
		switch {
		case err != nil:
			r.fail(err, e, path)
		case n < 0 && !perChannel:
			r.p.at(e.KeyPos, path, "size %d is negative (0 is unlimited)", n)
		default:
			l.MaxBytes = n
		}
	case "max_age", "ma", "maxage":
		l.MaxAge, _ = r.limitDuration(e, path, perChannel)
	case "max_subs", "max_subscriptions", "msu", "maxsubs", "maxsubscriptions":
		l.MaxSubs, _ = r.intIn(e, path, lo, math.MaxInt32)
	case "max_inactivity", "mi", "maxinactivity":
		l.MaxInactivity, _ = r.limitDuration(e, path, perChannel)
	default:
		return false
	}
	return true
}

// limitDuration reads a duration limit; a per-channel one may be negative (unlimited).
func (r *fileReader) limitDuration(e *conf.Entry, path string, perChannel bool) (time.Duration, bool) {
	if !perChannel {
		return r.duration(e, path)
	}
	v, err := e.AsDuration()
	if err != nil {
		r.fail(err, e, path)
		return 0, false
	}
	return v, true
}

// streamingReservedSchema is the streaming block's keys for later milestones: accepted and
// type-checked so that a file written for them loads, kept in streamSettings.reserved,
// not used yet.
func streamingReservedSchema() schema {
	return schema{
		f(kString, "ft_group", "ft_group_name"),
		f(kBool, "partitioning"),
		f(kInt, "ack_subs_pool_size", "ack_subscriptions_pool_size"),
		f(kBool, "encrypt"),
		f(kString, "encryption_cipher"),
		f(kString, "encryption_key"),
	}
}

// nsTLSBlock reads the streaming block's tls { ... }, for the connection to the external
// NATS server, with nats-streaming-server's keys (client_cert, client_key, client_ca or
// client_cacert, server_name, insecure) and the server block's names for the files.
func (r *fileReader) nsTLSBlock(st *streamSettings, e *conf.Entry, path string) (tlsSettings, bool) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return tlsSettings{}, false
	}
	t := tlsSettings{on: true, onAt: fileOrigin(e.KeyPos, path)}
	each(m, path, func(key, kpath string, e *conf.Entry) {
		switch key {
		case "client_cert", "cert_file":
			t.cert, _ = r.str(e, kpath)
			t.certAt = fileOrigin(e.KeyPos, kpath)
		case "client_key", "key_file":
			t.key, _ = r.str(e, kpath)
			t.keyAt = fileOrigin(e.KeyPos, kpath)
		case "client_ca", "client_cacert", "ca_file":
			t.ca, _ = r.str(e, kpath)
			t.caAt = fileOrigin(e.KeyPos, kpath)
		case "server_name":
			st.ns.serverName, _ = r.str(e, kpath)
		case "insecure":
			st.ns.insecure, _ = r.boolean(e, kpath)
		default:
			r.unknown(e, kpath)
		}
	})
	return t, true
}

package app

import (
	"math"
	"net"
	"slices"
	"strconv"

	"github.com/starling-io/starling/core/conf"
)

// Blocks read against a schema: every key must be known and of the right type, and the
// values are kept by canonical key name. The cluster { } block (clusterSchema) lands in
// settings.cluster, from which buildCluster (cluster.go) makes the routes' options; its
// keys with no meaning here (pool_size, connect_retries, ping_interval, ping_max) are
// accepted and logged at start as not used, naming file:line:col (clusterUnused). The
// file_options block is read key by key (config_fileopts.go) against fileOptionsSchema.
// The streaming keys of later milestones (ft_group, partitioning, encrypt, …:
// streamingReservedSchema) are kept in streamSettings.reserved, not used yet, and logged.

// kind is the type a reserved key's value must have.
type kind uint8

const (
	kString   kind = iota + 1
	kInt           // an integer, -1 for "unlimited" allowed
	kPort          // -1..65535
	kSize          // a byte count (1MB), -1 allowed
	kBool          //
	kDuration      // "2m" or 500ms: a number is refused (AsDuration)
	kSeconds       // a duration or a whole number of seconds (AsSeconds: ping_interval)
	kTimeout       // a duration or any number of seconds (AsTimeout: authorization.timeout)
	kStrings       // a list of strings (nats-server refuses a lone string for routes)
	kAddr          // host:port or a port
	kMap           // a nested block with keys
	kMapOf         // a block of named blocks (e.g. per-channel limits), each with keys
	kTLS           // a tls block, read like the top-level one
	kName          // a string without spaces (server and cluster names, as nats-server)
)

// field is one key of a reserved block: its canonical name first, then its aliases.
type field struct {
	names []string
	kind  kind
	keys  schema   // kMap, kMapOf
	oneOf []string // kString: the allowed values, if restricted
}

type schema []field

func f(k kind, names ...string) field { return field{names: names, kind: k} }

func (s schema) lookup(key string) (field, bool) {
	for _, f := range s {
		if slices.Contains(f.names, key) {
			return f, true
		}
	}
	return field{}, false
}

// clusterSchema is nats-server's cluster block.
func clusterSchema() schema {
	return schema{
		f(kName, "name"),
		f(kAddr, "listen"),
		f(kString, "host", "net"),
		f(kPort, "port"),
		f(kStrings, "routes"),
		{names: []string{"authorization"}, kind: kMap, keys: schema{
			f(kString, "user", "username"),
			f(kString, "password", "pass"),
			f(kString, "token"),
			f(kTimeout, "timeout"),
		}},
		f(kTLS, "tls"),
		f(kString, "advertise", "cluster_advertise"),
		f(kBool, "no_advertise"),
		f(kInt, "pool_size"),
		f(kInt, "connect_retries"),
		f(kSeconds, "ping_interval"),
		f(kInt, "ping_max"),
	}
}

// reserved reads a block against its schema into canonical name → value: string, int,
// bool, time.Duration, []string, map[string]any, or tlsSettings.
func (r *fileReader) reserved(e *conf.Entry, path string, keys schema) map[string]any {
	m, ok := r.mapOf(e, path)
	if !ok {
		return nil
	}
	out := map[string]any{}
	each(m, path, func(key, kpath string, e *conf.Entry) {
		fd, ok := keys.lookup(key)
		if !ok {
			r.unknown(e, kpath)
			return
		}
		if v, ok := r.reservedValue(e, kpath, fd); ok {
			out[fd.names[0]] = v
		}
	})
	return out
}

func (r *fileReader) reservedValue(e *conf.Entry, path string, fd field) (any, bool) {
	switch fd.kind {
	case kString:
		s, ok := r.str(e, path)
		if ok && fd.oneOf != nil && !slices.Contains(fd.oneOf, s) {
			r.p.at(e.KeyPos, path, "%q is not one of %q", s, fd.oneOf)
			return nil, false
		}
		return s, ok
	case kName:
		return r.name(e, path)
	case kInt:
		return r.intIn(e, path, -1, math.MaxInt64)
	case kPort:
		return r.intIn(e, path, -1, 65535)
	case kSize:
		n, err := e.AsSize()
		if err != nil {
			r.fail(err, e, path)
			return nil, false
		}
		if n < -1 {
			r.p.at(e.KeyPos, path, "size %d is negative", n)
			return nil, false
		}
		return n, true
	case kBool:
		return r.boolean(e, path)
	case kDuration:
		return r.duration(e, path)
	case kSeconds:
		return r.seconds(e, path)
	case kTimeout:
		return r.timeout(e, path)
	case kStrings:
		if e.Value.Kind != conf.KindArray {
			r.p.at(e.KeyPos, path, "expected a list of strings, got %s %s (write [%s], as nats-server requires)", e.Value.Kind, e.Value.Raw, e.Value.Raw)
			return nil, false
		}
		var out []string
		for _, it := range r.list(e, path) {
			out = append(out, it.s)
		}
		return out, true
	case kAddr:
		host, port, ok := r.hostPort(e, path)
		return net.JoinHostPort(host, strconv.Itoa(port)), ok
	case kMap:
		m := r.reserved(e, path, fd.keys)
		return m, m != nil
	case kMapOf:
		m, ok := r.mapOf(e, path)
		if !ok {
			return nil, false
		}
		out := map[string]any{}
		eachName(m, path, func(kpath string, e *conf.Entry) {
			if sub := r.reserved(e, kpath, fd.keys); sub != nil {
				out[e.Key] = sub
			}
		})
		return out, true
	case kTLS:
		return r.tlsBlock(e, path)
	}
	return nil, false
}

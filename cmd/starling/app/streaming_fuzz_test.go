package app

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/starling-io/starling/core/conf"
)

// FuzzStreamingConfig: no streaming block — its cluster block, the external server and its
// credentials included — panics the configuration reader or builder, and every problem is
// a configuration error.
func FuzzStreamingConfig(f *testing.F) {
	for _, s := range []string{
		"streaming { store: file, cluster { node_id: a, peers: [a, b, c], raft_heartbeat_timeout: 1s, log_path: \"/x\" } }\n",
		"streaming { cluster { bootstrap: true, node_id: \"n.1\", raft_listen: \"127.0.0.1:7\", snapshot_threshold: 5 } }\n",
		"streaming { nats_server_url: \"nats://u:p@h:4222\", username: u, password: p, tls { ca_file: x } }\n",
		"streaming { ns: 5, secure: true, token: t, credentials: c, nkey_seed_file: s }\n",
		"cluster { listen: 127.0.0.1:6222 }\nstreaming { store: bolt, cluster { node_id: a, peers: \"a,b\", proceed_on_restore_failure: true } }\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.conf")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
		err := m.ParseFlags([]string{"-c", path})
		var parseErrs conf.Errors
		var parseErr *conf.Error
		if err != nil && !errors.Is(err, ErrInvalidConfig) && !errors.As(err, &parseErrs) && !errors.As(err, &parseErr) {
			t.Fatalf("%q: an error that is not a configuration error: %v", data, err)
		}
	})
}

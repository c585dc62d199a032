package tests

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// max_control_line applies from the first byte, CONNECT included, as in nats-server: a
// nats.go client whose CONNECT is longer than the limit is refused with the limit's error.
// (Starling used to allow 4 KiB until CONNECT whatever the setting, and let it in.)
func TestMaxControlLineAppliesToConnect(t *testing.T) {
	m := startServer(t, "--max_control_line", "256")
	_, err := nats.Connect(clientURL(m), nats.Name(strings.Repeat("n", 300)))
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "maximum control line exceeded") {
		t.Fatalf("connect with a 300-byte name under max_control_line 256: err %v, want maximum control line exceeded", err)
	}
	nc := connect(t, m, nats.Name("short"))
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

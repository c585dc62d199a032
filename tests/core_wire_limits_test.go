package tests

import (
	"strings"
	"testing"
	"time"

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

// Subjects in permission errors are quoted as nats-server quotes them (Go's %q): a control
// byte in the subject arrives escaped, not raw, in the error nats.go reports.
func TestPermissionErrorQuotesSubject(t *testing.T) {
	m := startServer(t)
	errs := make(chan error, 1)
	nc := connect(t, m, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	must(t, nc.Publish("$NRG.a\x01b\"c", nil)) // a reserved subject: refused
	must(t, nc.Flush())
	select {
	case err := <-errs:
		want := `Permissions Violation for Publish to "$NRG.a\x01b\"c"`
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("async error %q, want it to contain %q", err, want)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no permissions error")
	}
}

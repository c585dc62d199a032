package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// ports_file_dir: the binary on random client, monitoring and route ports writes
// <dir>/starling_<pid>.ports with nats-server's JSON; every URL in it is a listener that
// answers, and SIGTERM removes the file.
func TestPortsFileDir(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "s.conf")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf("ports_file_dir: %q\ncluster { listen: \"127.0.0.1:-1\" }\n", dir)), 0o644))
	p := startProc(t, starlingBinary(t), "-c", conf, "-a", "127.0.0.1", "-p", "-1", "-m", "-1", "--http_host", "127.0.0.1", "--no_streaming")
	name := filepath.Join(dir, fmt.Sprintf("%s_%d.ports", filepath.Base(starlingBinary(t)), p.cmd.Process.Pid))
	var ports struct {
		Nats, Monitoring, Cluster []string
	}
	waitFor(t, 10*time.Second, func() error {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &ports)
	})
	if len(ports.Nats) != 1 || len(ports.Monitoring) != 1 || len(ports.Cluster) != 1 {
		t.Fatalf("ports file: %+v", ports)
	}
	nc, err := nats.Connect(ports.Nats[0])
	must(t, err)
	nc.Close()
	resp, err := http.Get(ports.Monitoring[0] + "/varz")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/varz: %s", ports.Monitoring[0], resp.Status)
	}
	u, err := url.Parse(ports.Cluster[0])
	must(t, err)
	if u.Scheme != "nats" {
		t.Fatalf("cluster URL %s", ports.Cluster[0])
	}
	rc, err := net.Dial("tcp", u.Host)
	must(t, err)
	rc.Close()

	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatalf("ports file after exit: %v", err)
	}
}

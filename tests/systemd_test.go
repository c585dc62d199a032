package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Static checks of the systemd unit, and systemd-analyze's where it is installed (systemd
// need not run).

// unit is a systemd unit file: section → key → values, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, file string) unit {
	t.Helper()
	b, err := os.ReadFile(file)
	must(t, err)
	u, section := unit{}, ""
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: %q outside a section", file, n+1, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: %q is not key=value", file, n+1, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// last is the value in force for a key (a later assignment wins), and whether it is set.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

const unitFile = "deploy/systemd/starling.service"

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, filepath.Join(repoRoot, unitFile))
	for key, want := range map[string]string{
		"Restart":                 "on-failure",
		"KillSignal":              "SIGTERM",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictSUIDSGID":        "yes",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"CapabilityBoundingSet":   "",
		"StateDirectory":          "starling",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		if got, ok := u.last("Service", key); !ok || got != want {
			t.Errorf("[Service] %s=%q (set: %v), want %q", key, got, ok, want)
		}
	}
	// A user of its own: DynamicUser, or a named user that is not root.
	if dyn, _ := u.last("Service", "DynamicUser"); dyn != "yes" {
		if user, ok := u.last("Service", "User"); !ok || user == "root" || user == "0" {
			t.Errorf("neither DynamicUser=yes nor a non-root User= (User=%q)", user)
		}
	}
	// Time for the graceful shutdown (the server gives itself 10 s) before SIGKILL.
	stop, _ := u.last("Service", "TimeoutStopSec")
	d, err := time.ParseDuration(stop)
	if n, nerr := strconv.Atoi(stop); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d < 15*time.Second {
		t.Errorf("TimeoutStopSec=%q: want at least 15s for a graceful stop", stop)
	}
	nofile, _ := u.last("Service", "LimitNOFILE")
	if n, err := strconv.Atoi(nofile); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE=%q: want at least 65536 (the default max_connections)", nofile)
	}
	if _, ok := u["Install"]["WantedBy"]; !ok {
		t.Error("no [Install] WantedBy=: systemctl enable would do nothing")
	}

	// ExecStart: the binary with the configuration file; the single-node example is that
	// file, and its store is the StateDirectory.
	exec0, _ := u.last("Service", "ExecStart")
	argv := strings.Fields(exec0)
	const conf = "/etc/starling/starling.conf"
	if len(argv) != 3 || argv[0] != "/usr/local/bin/starling" || argv[1] != "-c" || argv[2] != conf {
		t.Fatalf("ExecStart=%s: want /usr/local/bin/starling -c %s", exec0, conf)
	}
	example, err := os.ReadFile(filepath.Join(repoRoot, "examples", "single-node", "starling.conf"))
	must(t, err)
	if !strings.Contains(string(example), `dir: "/var/lib/starling"`) {
		t.Errorf("examples/single-node/starling.conf does not keep its store in /var/lib/starling, the unit's StateDirectory")
	}
}

// systemd-analyze, when installed: the unit verifies (the binary path pointed at the one
// under test, since verify wants it executable) and its security exposure is at most 2.0
// ("OK").
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is checked statically only (TestSystemdUnit)")
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, unitFile))
	must(t, err)
	bin, err := filepath.Abs(starlingBinary(t))
	must(t, err)
	dir := t.TempDir()
	file := filepath.Join(dir, "starling.service")
	must(t, os.WriteFile(file, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/starling", bin)), 0o644))
	run := func(args ...string) (string, error) {
		cmd := exec.Command(sa, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("verify", file); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// --offline came with systemd 252.
	ver, _ := run("--version")
	var v int
	if _, err := fmt.Sscanf(ver, "systemd %d", &v); err != nil || v < 252 {
		t.Skipf("systemd-analyze %q has no security --offline (systemd 252): exposure not checked", strings.SplitN(ver, "\n", 2)[0])
	}
	if out, err := run("security", "--offline=yes", "--threshold=20", file); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, tail(out, 3000))
	}
}

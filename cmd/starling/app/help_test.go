package app

import (
	"bytes"
	"context"
	"flag"
	"regexp"
	"strings"
	"testing"
)

func helpText(t *testing.T) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"--help"}, &out, &errOut); code != 0 || errOut.Len() != 0 {
		t.Fatalf("--help: code %d, stderr %q", code, errOut.String())
	}
	return out.String()
}

// helpNames returns, per name, how often it is listed in the names column of the help,
// and the sections in order.
func helpNames(help string) (map[string]int, []string) {
	seen := map[string]int{}
	var sections []string
	name := regexp.MustCompile(`^--?[A-Za-z_]+$`)
	for _, line := range strings.Split(help, "\n") {
		if strings.HasSuffix(line, "Options:") {
			sections = append(sections, strings.TrimSuffix(line, ":"))
			continue
		}
		if !strings.HasPrefix(strings.TrimLeft(line, " "), "-") || !strings.HasPrefix(line, "    ") {
			continue
		}
		left := line[:min(len(line), helpColumn)]
		for _, field := range strings.Fields(left) {
			field = strings.TrimSuffix(field, ",")
			if name.MatchString(field) {
				seen[strings.TrimLeft(field, "-")]++
			}
		}
	}
	return seen, sections
}

// Every registered flag is in the help exactly once, on the line of its aliases, and the
// help lists nothing that is not a flag.
func TestHelpListsEveryFlagOnce(t *testing.T) {
	seen, sections := helpNames(helpText(t))
	f := newFlags(newSettings())
	f.fs.VisitAll(func(fl *flag.Flag) {
		if seen[fl.Name] != 1 {
			t.Errorf("flag -%s is listed %d times in the help", fl.Name, seen[fl.Name])
		}
		delete(seen, fl.Name)
	})
	delete(seen, "h")
	delete(seen, "help")
	for n := range seen {
		t.Errorf("the help lists %q, which is not a flag", n)
	}
	// nats-streaming-server's order: streaming first, then the server's sections.
	want := []string{"Streaming Server Options", "Streaming Server Clustering Options", "Streaming Server File Store Options", "Streaming Server Logging Options",
		"Server Options", "Monitoring Options", "Logging Options", "Authorization Options", "TLS Options", "Cluster Options", "Common Options"}
	if strings.Join(sections, "|") != strings.Join(want, "|") {
		t.Errorf("sections\n got %q\nwant %q", sections, want)
	}
	// The subcommands: the offline store checks and the import from nats-streaming-server
	// (README, docs/migration-from-nss.md).
	for _, usage := range []string{"starling store verify DIR", "starling store repair [--quarantine] DIR", "starling store import --from-nss DIR --dir TARGET"} {
		if !strings.Contains(helpText(t), usage) {
			t.Errorf("the help does not mention %q", usage)
		}
	}
	// Aliases share a line.
	for _, line := range []string{"-a, --addr, --net <host>", "-l, --log, --log_file <file>", "-cid, --cluster_id <string>", "--cluster, --cluster_listen <url>"} {
		if !strings.Contains(helpText(t), "    "+line) {
			t.Errorf("no line %q", line)
		}
	}
}

// Every flag name Starling had before the option table still parses.
func TestFlagNamesKept(t *testing.T) {
	f := newFlags(newSettings())
	for _, n := range strings.Fields(`D DV P SD SDV SV V a addr auth c cid client_advertise cluster cluster_advertise
		cluster_id cluster_listen cluster_name config debug dir discover_prefix file_auto_sync file_buffer_size
		file_fds_limit file_parallel_recovery file_slice_max_age file_slice_max_bytes file_slice_max_msgs file_sync
		hb_fail_count hb_interval hb_timeout hbf hbi hbt http_base_path http_host http_port https_port io_batch_size
		l lame_duck_duration lame_duck_grace_period log m ma max_age max_bytes max_channels max_clients
		max_connections max_control_line max_inactivity max_msgs max_payload max_pending max_subs max_subscriptions
		mb mc mi mm ms msu n name net no_advertise no_auth_user no_streaming p pass pid ping_interval ping_max port
		replace_durable routes server_name signal st stan_debug stan_trace store t tls tlscacert tlscert tlskey
		tlsverify trace user v version write_deadline`) {
		if f.fs.Lookup(n) == nil {
			t.Errorf("flag -%s is gone", n)
		}
	}
}

// Boolean flags take no value; -DV and -SDV set both levels; a bad flag names itself and
// points at --help without printing it.
func TestBooleanFlagsAndUsageErrors(t *testing.T) {
	s := parse(t, "-DV", "-SDV", "--no_streaming", "--tls=false", "-T=false", "--replace_durable")
	if !s.debug || !s.trace || !s.streaming.debug || !s.streaming.trace || !s.streaming.off || s.logTime || !s.streaming.opts.ReplaceDurable {
		t.Errorf("booleans: %+v", s)
	}
	if s := parse(t); !s.logTime || s.logFormat != logText || s.debug || s.trace {
		t.Errorf("defaults: logtime %v format %q", s.logTime, s.logFormat)
	}
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"--log_format", "xml"}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "log_format") || !strings.Contains(errOut.String(), "starling --help") ||
		strings.Contains(errOut.String(), "Options:") || out.Len() != 0 {
		t.Errorf("code %d stdout %q stderr %q", code, out.String(), errOut.String())
	}
}

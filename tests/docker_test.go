package tests

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Static checks of the Dockerfile (docker may not be able to build where the tests run) and
// the container's health probe against a real server.

// instruction is one Dockerfile instruction: its keyword in upper case and its arguments,
// continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

// stage is one FROM ... of a Dockerfile and the instructions under it.
type stage struct {
	from, name string
	ins        []instruction
}

// parseDockerfile reads the instructions of a Dockerfile (comments dropped, lines ending
// in a backslash joined) grouped by stage.
func parseDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		more := strings.HasSuffix(line, "\\")
		cur.WriteString(strings.TrimSuffix(line, "\\"))
		cur.WriteByte(' ')
		if more {
			continue
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.Join(strings.Fields(args), " "), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before the first FROM", file, start, in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	must(t, sc.Err())
	return stages
}

// all returns the stage's instructions with keyword cmd.
func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes an exec-form (JSON array) argument list.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile:%d: %s %s: want the exec form [\"...\"] (the final image has no shell)", in.line, in.cmd, in.args)
	}
	return argv
}

var (
	goBuildRe = regexp.MustCompile(`go build ([^&;]*)`)
	outputRe  = regexp.MustCompile(`-o (\S+)`)
	mkdirRe   = regexp.MustCompile(`mkdir -p ((?:\S+ ?)+)`)
)

func TestDockerfile(t *testing.T) {
	file := filepath.Join(repoRoot, "Dockerfile")
	stages := parseDockerfile(t, file)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s): want a builder and a final image", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.name == "" || !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("first stage FROM %s (name %q): want a named golang builder", build.from, build.name)
	}

	// The builder: static binaries of packages that exist; what it writes is what the final
	// stage copies.
	produced := map[string]bool{}
	for _, run := range build.all("RUN") {
		for _, m := range goBuildRe.FindAllStringSubmatch(run.args, -1) {
			seg := run.args[:strings.Index(run.args, m[0])+len(m[0])]
			if i := strings.LastIndex(seg, "&&"); i >= 0 {
				seg = seg[i:]
			}
			if !strings.Contains(seg, "CGO_ENABLED=0") {
				t.Errorf("Dockerfile:%d: %q without CGO_ENABLED=0: the final image has no libc", run.line, m[0])
			}
			o := outputRe.FindStringSubmatch(m[1])
			if o == nil {
				t.Errorf("Dockerfile:%d: %q has no -o", run.line, m[0])
				continue
			}
			produced[o[1]] = true
			pkg := strings.Fields(m[1])[len(strings.Fields(m[1]))-1]
			if st, err := os.Stat(filepath.Join(repoRoot, pkg)); err != nil || !st.IsDir() {
				t.Errorf("Dockerfile:%d: builds %s, which is not a package directory of the repository", run.line, pkg)
			}
		}
		for _, m := range mkdirRe.FindAllStringSubmatch(run.args, -1) {
			for _, d := range strings.Fields(m[1]) {
				produced[d] = true
			}
		}
	}
	for _, want := range []string{"./cmd/starling", "./cmd/healthcheck"} {
		if !strings.Contains(fmt.Sprint(build.all("RUN")), want) {
			t.Errorf("the builder does not build %s", want)
		}
	}

	// The final stage: the copied files, and where they land.
	user := ""
	if u := final.all("USER"); len(u) > 0 {
		user = u[len(u)-1].args
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	installed := map[string]bool{} // paths in the final image
	dataOwned := false
	for _, cp := range final.all("COPY") {
		f := strings.Fields(cp.args)
		var from, chown string
		var paths []string
		for _, a := range f {
			switch {
			case strings.HasPrefix(a, "--from="):
				from = strings.TrimPrefix(a, "--from=")
			case strings.HasPrefix(a, "--chown="):
				chown = strings.TrimPrefix(a, "--chown=")
			default:
				paths = append(paths, a)
			}
		}
		if from != build.name {
			t.Errorf("Dockerfile:%d: COPY %s: want --from=%s", cp.line, cp.args, build.name)
			continue
		}
		srcs, dst := paths[:len(paths)-1], paths[len(paths)-1]
		for _, s := range srcs {
			if !produced[s] {
				t.Errorf("Dockerfile:%d: COPY of %s, which the builder does not write (it writes %v)", cp.line, s, produced)
			}
			if strings.HasSuffix(dst, "/") {
				installed[dst+path.Base(s)] = true
			} else {
				installed[dst] = true
			}
		}
		if dst == "/data" && chown == user {
			dataOwned = true
		}
	}
	if !dataOwned {
		t.Errorf("/data is not copied into the final image owned by USER %s: the server could not write its store", user)
	}

	var exposed []string
	for _, e := range final.all("EXPOSE") {
		exposed = append(exposed, strings.Fields(e.args)...)
	}
	for _, port := range []string{"4222", "6222", "8222"} {
		if !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
			t.Errorf("EXPOSE %v lacks %s", exposed, port)
		}
	}
	volumes := ""
	for _, v := range final.all("VOLUME") {
		volumes += " " + v.args
	}
	if !strings.Contains(volumes, "/data") {
		t.Errorf("no VOLUME /data (VOLUME%s)", volumes)
	}
	if s := final.all("STOPSIGNAL"); len(s) > 0 && s[len(s)-1].args != "SIGTERM" {
		t.Errorf("STOPSIGNAL %s: SIGTERM is the graceful shutdown", s[len(s)-1].args)
	}

	// HEALTHCHECK: a program of the image probing /healthz on the monitoring port.
	hc := final.all("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("final stage has %d HEALTHCHECK instructions, want 1", len(hc))
	}
	_, probe, ok := strings.Cut(hc[0].args, "CMD ")
	if !ok {
		t.Fatalf("Dockerfile:%d: HEALTHCHECK %s has no CMD", hc[0].line, hc[0].args)
	}
	hcArgv := execForm(t, instruction{cmd: "HEALTHCHECK CMD", args: probe, line: hc[0].line})
	if !installed[hcArgv[0]] {
		t.Errorf("HEALTHCHECK runs %s, which is not copied into the final image (%v)", hcArgv[0], installed)
	}
	if !strings.Contains(probe, ":8222/healthz") {
		t.Errorf("HEALTHCHECK %s does not probe /healthz on port 8222", probe)
	}

	// ENTRYPOINT + CMD: the image's binary, with a configuration `starling -t` accepts,
	// monitoring on 8222 (the health check's port) and the file store under /data.
	ep, cmd := final.all("ENTRYPOINT"), final.all("CMD")
	if len(ep) == 0 || len(cmd) == 0 {
		t.Fatal("final stage needs ENTRYPOINT and CMD")
	}
	entry, args := execForm(t, ep[len(ep)-1]), execForm(t, cmd[len(cmd)-1])
	if !installed[entry[0]] || path.Base(entry[0]) != "starling" {
		t.Errorf("ENTRYPOINT %v: want the starling binary copied into the image", entry)
	}
	joined := " " + strings.Join(args, " ") + " "
	for _, want := range []string{" -m 8222 ", " --store file ", " --dir /data "} {
		if !strings.Contains(joined, want) {
			t.Errorf("CMD %v lacks %q", args, strings.TrimSpace(want))
		}
	}
	if code, out := checkConfig(t, nil, append(entry[1:], args...)...); code != 0 {
		t.Errorf("starling -t %v (the image's command): exit %d\n%s", args, code, out)
	}

	// The build context leaves out .git: a worktree's .git is a file pointing outside the
	// context, and the builder needs no VCS.
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	must(t, err)
	if !slices.Contains(strings.Fields(string(ignore)), ".git") {
		t.Error(".dockerignore does not leave out .git")
	}
}

var (
	healthOnce sync.Once
	healthBin  string
	healthErr  error
)

// healthcheckBinary builds cmd/healthcheck once per test run.
func healthcheckBinary(t *testing.T) string {
	t.Helper()
	healthOnce.Do(func() {
		dir, err := os.MkdirTemp("", "starling-healthcheck")
		if err != nil {
			healthErr = err
			return
		}
		healthBin = filepath.Join(dir, "healthcheck")
		cmd := exec.Command("go", "build", "-o", healthBin, "./cmd/healthcheck")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			healthErr = fmt.Errorf("go build ./cmd/healthcheck: %v\n%s", err, out)
		}
	})
	if healthErr != nil {
		t.Fatal(healthErr)
	}
	return healthBin
}

// The container's health probe says healthy while the server runs and unhealthy once it
// has stopped.
func TestHealthcheckProbe(t *testing.T) {
	bin := healthcheckBinary(t)
	p, _, mon := startBinary(t)
	url := "http://" + mon + "/healthz"
	if out, err := exec.Command(bin, url).CombinedOutput(); err != nil {
		t.Fatalf("healthcheck of a running server: %v\n%s", err, out)
	}
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	out, err := exec.Command(bin, "-timeout", "2s", url).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("healthcheck of a stopped server: %v (want exit 1)\n%s", err, out)
	}
}

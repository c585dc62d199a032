package tests

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
// JSON messages, each ended by a NUL byte, written to the browser's file descriptor 3 and
// read from its descriptor 4). No WebDriver, no websocket, no Go dependency: the protocol
// calls the tests need (open a page, navigate, evaluate, screenshot) fit in this file.

// chromiumCallTimeout bounds one protocol call; a navigation or evaluation returns long
// before it, a browser that hangs fails the test instead of the suite's timeout.
const chromiumCallTimeout = 30 * time.Second

type chromium struct {
	cmd    *exec.Cmd
	cmds   *os.File // the browser reads commands from its end (fd 3)
	stderr *syncBuffer
	exited chan struct{} // closed when the read loop ends (the browser closed its pipe)

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan cdpMessage
	logs    map[string][]string // per session: exceptions, console errors, browser log errors
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// chromiumPath finds the browser: $CHROMIUM, else Debian's chromium or another common name.
func chromiumPath() (string, bool) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// startChromium runs a headless browser for the test and closes it at the end. It skips
// the test, saying why, when there is no browser or it does not start (no display server is
// needed, but a container may lack what Chromium needs).
func startChromium(t *testing.T) *chromium {
	t.Helper()
	bin, ok := chromiumPath()
	if !ok {
		t.Skip("chromium not found: `make chromium` installs Debian's (as root, or with passwordless sudo), " +
			"or set CHROMIUM to a Chromium or Chrome binary")
	}
	cmdR, cmdW, err := os.Pipe()
	must(t, err)
	outR, outW, err := os.Pipe()
	must(t, err)
	c := &chromium{cmds: cmdW, stderr: &syncBuffer{}, exited: make(chan struct{}),
		waiting: map[int64]chan cdpMessage{}, logs: map[string][]string{}}
	c.cmd = exec.Command(bin,
		"--headless", "--remote-debugging-pipe", "--user-data-dir="+t.TempDir(),
		// Root in a container has no usable sandbox; the pages are the test's own.
		"--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		// Nothing from the network: no updates, sync, metrics, first-run pages or extensions.
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
		"--disable-breakpad", "--disable-domain-reliability", "--metrics-recording-only",
		"--password-store=basic", "--use-mock-keychain", "--mute-audio", "--hide-scrollbars",
		"about:blank")
	c.cmd.ExtraFiles = []*os.File{cmdR, outW} // fds 3 and 4
	c.cmd.Stdout = c.stderr
	c.cmd.Stderr = c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	if err := c.cmd.Start(); err != nil {
		t.Skipf("chromium (%s) does not start: %v", bin, err)
	}
	cmdR.Close()
	outW.Close()
	go c.readLoop(outR)
	t.Cleanup(c.close)

	var v struct {
		Product string `json:"product"`
	}
	if err := c.call("", "Browser.getVersion", nil, &v); err != nil {
		t.Skipf("chromium (%s) does not run: %v\n%s", bin, err, tail(c.stderr.String(), 2000))
	}
	t.Logf("browser: %s", v.Product)
	return c
}

func (c *chromium) readLoop(r *os.File) {
	defer close(c.exited)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		b, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(b[:len(b)-1], &m) != nil {
			continue
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch := c.waiting[m.ID]; ch != nil {
				delete(c.waiting, m.ID)
				ch <- m
			}
		} else if line := eventLog(m); line != "" {
			c.logs[m.SessionID] = append(c.logs[m.SessionID], line)
		}
		c.mu.Unlock()
	}
}

// eventLog renders the events a test cares about (the page's uncaught exceptions,
// console.error, and the browser's errors: failed loads, blocked content); "" for others.
func eventLog(m cdpMessage) string {
	switch m.Method {
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(m.Params, &p)
		return "exception: " + p.Details.Text + " " + p.Details.Exception.Description
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Type != "error" && p.Type != "assert" {
			return ""
		}
		var parts []string
		for _, a := range p.Args {
			parts = append(parts, fmt.Sprint(a.Value)+a.Description)
		}
		return "console." + p.Type + ": " + strings.Join(parts, " ")
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Source string `json:"source"`
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Entry.Level != "error" {
			return ""
		}
		return "log (" + p.Entry.Source + "): " + p.Entry.Text + " " + p.Entry.URL
	}
	return ""
}

// call sends one command (to the browser when session is "", else to that page) and
// decodes its result into out (when not nil).
func (c *chromium) call(session, method string, params, out any) error {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return err
	}
	ch := make(chan cdpMessage, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.waiting[id] = ch
	c.mu.Unlock()
	b, err := json.Marshal(cdpMessage{ID: id, SessionID: session, Method: method, Params: p})
	if err != nil {
		return err
	}
	if _, err := c.cmds.Write(append(b, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	timer := time.NewTimer(chromiumCallTimeout)
	defer timer.Stop()
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-c.exited:
		return fmt.Errorf("%s: the browser exited", method)
	case <-timer.C:
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: no answer in %v", method, chromiumCallTimeout)
	}
}

// close asks the browser to quit, and kills its process group if it does not.
func (c *chromium) close() {
	_ = c.call("", "Browser.close", nil, nil)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	_ = c.cmd.Wait()
	c.cmds.Close()
}

// browserPage is one tab.
type browserPage struct {
	c       *chromium
	session string
}

// newPage opens a tab with a width × height viewport.
func (c *chromium) newPage(t *testing.T, width, height int) *browserPage {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	must(t, c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target))
	var att struct {
		SessionID string `json:"sessionId"`
	}
	must(t, c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att))
	p := &browserPage{c: c, session: att.SessionID}
	for _, domain := range []string{"Page", "Runtime", "Log"} {
		must(t, c.call(p.session, domain+".enable", nil, nil))
	}
	must(t, p.resize(width, height))
	t.Cleanup(func() { _ = c.call("", "Target.closeTarget", map[string]any{"targetId": target.TargetID}, nil) })
	return p
}

func (p *browserPage) resize(width, height int) error {
	return p.c.call(p.session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
}

// navigate loads url (returning once the navigation is committed, not when the page is
// done: wait for what the test expects with waitFor).
func (p *browserPage) navigate(url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.c.call(p.session, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, r.ErrorText)
	}
	return nil
}

// eval evaluates a JavaScript expression in the page (awaiting a promise) and decodes its
// value, which must be JSON-serialisable, into out.
func (p *browserPage) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.c.call(p.session, "Runtime.evaluate",
		map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("evaluate %q: %s %s", expr, r.Exception.Text, r.Exception.Exception.Description)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// logs returns the page's exceptions and error messages so far.
func (p *browserPage) logs() []string {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return append([]string(nil), p.c.logs[p.session]...)
}

// screenshot returns a PNG of the whole page at the viewport's width.
func (p *browserPage) screenshot(width int) ([]byte, error) {
	var lm struct {
		Content struct {
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := p.c.call(p.session, "Page.getLayoutMetrics", nil, &lm); err != nil {
		return nil, err
	}
	if lm.Content.Height <= 0 {
		return nil, errors.New("page has no height")
	}
	if err := p.resize(width, int(math.Ceil(lm.Content.Height))); err != nil {
		return nil, err
	}
	var shot struct {
		Data string `json:"data"`
	}
	if err := p.c.call(p.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG")) {
		return nil, errors.New("screenshot is not a PNG")
	}
	return b, nil
}

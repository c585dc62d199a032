package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime/pprof"
	"time"
)

// PROFILEZ ({"name":"heap","debug":0}, or {"name":"cpu","duration":<ns>}) answers with a
// runtime profile of this process, as nats-server's does for `nats server request profile`:
// the system account's users may profile a server without its --profile port. Each runs on
// a goroutine of its own (the events must not wait for it); a CPU profile at most
// maxCPUProfile long, one at a time (runtime/pprof's own rule).

// maxCPUProfile bounds a requested CPU profile.
const maxCPUProfile = time.Minute

type profilezOptions struct {
	Name     string        `json:"name"`
	Debug    int           `json:"debug"`
	Duration time.Duration `json:"duration,omitempty"`
}

// profilezData is nats-server's ProfilezStatus.
type profilezData struct {
	Profile []byte `json:"profile"`
	Error   string `json:"error,omitempty"`
}

// profilez answers a PROFILEZ request, always from a goroutine of its own (nil here): a
// CPU profile lasts its duration, and a goroutine or heap profile of a busy server takes
// long enough to hold up the events and the other requests (nats-server runs each apart).
func (s *Server) profilez(r sysReq, _ *sysServerInfo) []byte {
	var o profilezOptions
	_ = json.Unmarshal(r.data, &o) // a body that is not JSON was refused before
	go func() {
		data := s.profile(o)
		b := sysAnswer(s.sysInfo(), data, nil)
		select {
		case s.sys.reqs <- sysReq{reply: r.reply, acc: r.acc, answer: b}:
		case <-s.quit:
		}
	}()
	return nil
}

// profile takes the profile o names (a CPU profile: for its duration, or until the server
// stops).
func (s *Server) profile(o profilezOptions) profilezData {
	var data profilezData
	var buf bytes.Buffer
	if o.Name != "cpu" {
		if p := pprof.Lookup(o.Name); p == nil {
			data.Error = fmt.Sprintf("Profile %q not found", o.Name)
		} else if err := p.WriteTo(&buf, o.Debug); err != nil {
			data.Error = fmt.Sprintf("Profile %q error: %s", o.Name, err)
		} else {
			data.Profile = buf.Bytes()
		}
		return data
	}
	d := min(max(o.Duration, 0), maxCPUProfile)
	if d == 0 {
		d = 5 * time.Second
	}
	if err := pprof.StartCPUProfile(&buf); err != nil {
		data.Error = fmt.Sprintf("Profile %q error: %s", o.Name, err)
		return data
	}
	select {
	case <-time.After(d):
	case <-s.quit:
	}
	pprof.StopCPUProfile()
	data.Profile = buf.Bytes()
	return data
}

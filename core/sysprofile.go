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
// the system account's users may profile a server without its --profile port. A CPU
// profile runs on a goroutine of its own (the events must not wait for it), at most
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

// profilez answers a PROFILEZ request: now, or when a CPU profile is done (nil here).
func (s *Server) profilez(r sysReq, info *sysServerInfo) []byte {
	var o profilezOptions
	_ = json.Unmarshal(r.data, &o) // a body that is not JSON was refused before
	if o.Name != "cpu" {
		var data profilezData
		if p := pprof.Lookup(o.Name); p == nil {
			data.Error = fmt.Sprintf("Profile %q not found", o.Name)
		} else {
			var buf bytes.Buffer
			if err := p.WriteTo(&buf, o.Debug); err != nil {
				data.Error = fmt.Sprintf("Profile %q error: %s", o.Name, err)
			} else {
				data.Profile = buf.Bytes()
			}
		}
		return sysAnswer(info, data, nil)
	}
	d := min(max(o.Duration, 0), maxCPUProfile)
	if d == 0 {
		d = 5 * time.Second
	}
	go func() {
		var data profilezData
		var buf bytes.Buffer
		if err := pprof.StartCPUProfile(&buf); err != nil {
			data.Error = fmt.Sprintf("Profile %q error: %s", o.Name, err)
		} else {
			select {
			case <-time.After(d):
			case <-s.quit:
			}
			pprof.StopCPUProfile()
			data.Profile = buf.Bytes()
		}
		b := sysAnswer(s.sysInfo(), data, nil)
		select {
		case s.sys.reqs <- sysReq{reply: r.reply, acc: r.acc, answer: b}:
		case <-s.quit:
		}
	}()
	return nil
}

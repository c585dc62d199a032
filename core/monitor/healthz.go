package monitor

import (
	"encoding/json"
	"net/http"
)

// healthStatus is nats-server's HealthStatus as /healthz answers it (without status_code):
// the failure in error, or with details=true in errors.
type healthStatus struct {
	Status string        `json:"status"`
	Error  string        `json:"error,omitempty"`
	Errors []healthError `json:"errors,omitempty"`
}

// healthError is nats-server's HealthzError.
type healthError struct {
	Type  string `json:"type"` // BAD_REQUEST, CONNECTION (nats-server's JetStream kinds do not arise)
	Error string `json:"error"`
}

// HandleHealthz serves /healthz (compact JSON): 200 when healthy; 400 for a stream without
// an account or a consumer without a stream; 500 while the server does not accept clients;
// 503 while a check added by AddHealthCheck fails. The JetStream options are read (a
// malformed one is refused, as nats-server's: a probe with a typo must not pass), not used.
func (m *Monitor) HandleHealthz(w http.ResponseWriter, r *http.Request) {
	p := params{r: r}
	for _, name := range []string{"js-enabled", "js-enabled-only", "js-server-only", "js-meta-only"} {
		p.bool(name)
	}
	details := p.bool("details")
	if p.err != nil {
		badRequest(w, p.err)
		return
	}
	q := r.URL.Query()
	code, kind, msg := http.StatusOK, "", ""
	switch {
	case q.Get("account") == "" && q.Get("stream") != "":
		code, kind, msg = http.StatusBadRequest, "BAD_REQUEST", `"account" must not be empty when checking stream health`
	case q.Get("stream") == "" && q.Get("consumer") != "":
		code, kind, msg = http.StatusBadRequest, "BAD_REQUEST", `"stream" must not be empty when checking consumer health`
	default:
		if h := m.srv.Healthz(); h.Status != "ok" {
			code, kind, msg = http.StatusInternalServerError, "CONNECTION", h.Error
			break
		}
		m.mu.Lock()
		checks := m.checks
		m.mu.Unlock()
		for _, check := range checks {
			if err := check(); err != nil {
				code, kind, msg = http.StatusServiceUnavailable, "CONNECTION", err.Error()
				break
			}
		}
	}
	hs := healthStatus{Status: "ok"}
	switch {
	case msg == "":
	case details:
		hs.Status, hs.Errors = "error", []healthError{{Type: kind, Error: msg}}
	default:
		hs.Status, hs.Error = "error", msg
	}
	b, _ := json.Marshal(hs)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

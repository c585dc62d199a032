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
	code := http.StatusOK
	var errs []healthError // the first decides the answer; details=true lists them all
	switch {
	case q.Get("account") == "" && q.Get("stream") != "":
		code = http.StatusBadRequest
		errs = append(errs, healthError{"BAD_REQUEST", `"account" must not be empty when checking stream health`})
	case q.Get("stream") == "" && q.Get("consumer") != "":
		code = http.StatusBadRequest
		errs = append(errs, healthError{"BAD_REQUEST", `"stream" must not be empty when checking consumer health`})
	default:
		if h := m.srv.Healthz(); h.Status != "ok" {
			code = http.StatusInternalServerError
			errs = append(errs, healthError{"CONNECTION", h.Error})
			break
		}
		m.mu.Lock()
		checks := m.checks
		m.mu.Unlock()
		for _, check := range checks {
			if err := check(); err != nil {
				if len(errs) == 0 {
					code = http.StatusServiceUnavailable
				}
				errs = append(errs, healthError{"CONNECTION", err.Error()})
				if !details {
					break
				}
			}
		}
	}
	hs := healthStatus{Status: "ok"}
	switch {
	case len(errs) == 0:
	case details:
		hs.Status, hs.Errors = "error", errs
	default:
		hs.Status, hs.Error = "error", errs[0].Error
	}
	b, _ := json.Marshal(hs)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

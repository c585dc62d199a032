package monitor

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/starling-io/starling/core"
)

// A server that does not accept clients yet answers /healthz 500, as nats-server's
// readiness failure; with details=true the failure is listed under errors as a CONNECTION
// error.
func TestHealthzNotReady(t *testing.T) {
	srv, err := core.New(core.Options{Host: "127.0.0.1", Port: -1}) // never started
	if err != nil {
		t.Fatal(err)
	}
	h := New(srv, "", nil).Handler()
	for q, want := range map[string]string{
		"":          `{"status":"error","error":"server not ready for client connections"}`,
		"details=1": `{"status":"error","errors":[{"type":"CONNECTION","error":"server not ready for client connections"}]}`,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz?"+q, nil))
		if rec.Code != http.StatusInternalServerError || strings.TrimSpace(rec.Body.String()) != want {
			t.Errorf("/healthz?%s: %d %s, want 500 %s", q, rec.Code, rec.Body, want)
		}
	}
}

// With details=true every failing check is listed, as nats-server lists every error; the
// first decides the status code and is the plain answer's error. Before, only the first.
func TestHealthzDetailsListsEveryFailure(t *testing.T) {
	m := New(startCore(t), "", nil)
	m.AddHealthCheck(func() error { return errors.New("first") })
	m.AddHealthCheck(func() error { return nil })
	m.AddHealthCheck(func() error { return errors.New("second") })
	h := m.Handler()
	for q, want := range map[string]string{
		"":             `{"status":"error","error":"first"}`,
		"details=true": `{"status":"error","errors":[{"type":"CONNECTION","error":"first"},{"type":"CONNECTION","error":"second"}]}`,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz?"+q, nil))
		if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != want {
			t.Errorf("/healthz?%s: %d %s, want 503 %s", q, rec.Code, rec.Body, want)
		}
	}
}

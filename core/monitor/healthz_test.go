package monitor

import (
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

package monitor

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"time"
)

// The dashboard served at / (dashboard/: index.html, dashboard.js, dashboard.css): plain
// HTML, JavaScript and CSS, embedded in the binary, with no build step and nothing fetched
// from elsewhere. The page polls the JSON endpoints with URLs relative to itself, so it
// works under any base path; with streaming off its endpoints answer 404 and the page says so.
//
//go:embed dashboard
var dashboardFiles embed.FS // read-only

// dashboardCSP allows the page its own script, style and JSON endpoints and nothing else:
// client-chosen names (channels, client IDs) cannot become script even if rendered wrongly.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded dashboard file, ready to serve.
type asset struct {
	name, contentType, etag string
	body                    []byte
}

// dashboardAssets maps the URL paths (relative to the base path) to the files they serve.
func dashboardAssets() map[string]*asset {
	out := map[string]*asset{}
	for urlPath, f := range map[string]struct{ file, ctype string }{
		"/":                        {"index.html", "text/html; charset=utf-8"},
		"/dashboard/dashboard.js":  {"dashboard.js", "text/javascript; charset=utf-8"},
		"/dashboard/dashboard.css": {"dashboard.css", "text/css; charset=utf-8"},
	} {
		b, err := dashboardFiles.ReadFile(path.Join("dashboard", f.file))
		if err != nil {
			panic("monitor: embedded dashboard file missing: " + f.file) // a build without it is broken
		}
		sum := sha256.Sum256(b)
		out[urlPath] = &asset{name: f.file, contentType: f.ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, body: b}
	}
	return out
}

// serve writes the file; a browser that has it (If-None-Match) gets 304.
func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache") // revalidate: an upgraded server serves its own page
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if a.name == "index.html" {
		h.Set("Content-Security-Policy", dashboardCSP)
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

// HandleRoot serves the dashboard page (and its links to the JSON endpoints).
func (m *Monitor) HandleRoot(w http.ResponseWriter, r *http.Request) {
	m.assets["/"].serve(w, r)
}

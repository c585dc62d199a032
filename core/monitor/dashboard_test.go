package monitor

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The dashboard is served at / (under the base path too) with its script and style, every
// URL it names is relative, nothing is fetched from elsewhere, and every JSON link of the
// page is served.
func TestDashboardFiles(t *testing.T) {
	srv := startCore(t)
	for _, base := range []string{"", "/mon", "/a/b"} {
		h := New(srv, base, nil).Handler()
		r := get(t, h, base+"/")
		page := body(t, r)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
			!strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("%s/: %d %v", base, r.StatusCode, r.Header)
		}
		for _, asset := range []struct{ path, ctype string }{
			{"dashboard/dashboard.js", "text/javascript; charset=utf-8"},
			{"dashboard/dashboard.css", "text/css; charset=utf-8"},
		} {
			if !strings.Contains(page, `"`+asset.path+`"`) {
				t.Errorf("the page does not load %s", asset.path)
			}
			r := get(t, h, base+"/"+asset.path)
			text := body(t, r)
			if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != asset.ctype || len(text) < 100 {
				t.Fatalf("%s/%s: %d %v", base, asset.path, r.StatusCode, r.Header)
			}
			// Revalidated with its ETag: unchanged, nothing is sent again.
			if r := get(t, h, base+"/"+asset.path, "If-None-Match", r.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
				t.Errorf("%s/%s with its ETag: %d", base, asset.path, r.StatusCode)
			}
			if u := regexp.MustCompile(`https?://[^"' )]*`).FindAllString(strings.ReplaceAll(text, "http://www.w3.org/2000/svg", ""), -1); u != nil {
				t.Errorf("%s names other sites: %v", asset.path, u)
			}
			if asset.path == "dashboard/dashboard.js" {
				if abs := regexp.MustCompile(`get\("/`).FindString(text); abs != "" {
					t.Errorf("dashboard.js fetches an absolute path: %s", abs)
				}
			}
		}
		refs := regexp.MustCompile(`(?:href|src)="([^"]*)"`).FindAllStringSubmatch(page, -1)
		if len(refs) < 10 {
			t.Fatalf("only %d links in the page", len(refs))
		}
		for _, ref := range refs {
			u := ref[1]
			if strings.HasPrefix(u, "/") || strings.Contains(u, "//") {
				t.Errorf("the page links to %q: not relative", u)
			}
			if u == "data:," || strings.HasPrefix(u, "streaming/") { // streaming's are mounted by cmd/starling
				continue
			}
			if r := get(t, h, base+"/"+u); r.StatusCode != http.StatusOK {
				t.Errorf("%s/%s (linked from the page): %d", base, u, r.StatusCode)
			}
		}
		if base != "" {
			// Without the trailing slash the relative URLs would miss the base path: redirect.
			r := get(t, h, base)
			if want := base[strings.LastIndex(base, "/")+1:] + "/"; r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != want {
				t.Errorf("GET %s: %d Location %q, want %q", base, r.StatusCode, r.Header.Get("Location"), want)
			}
			if r := get(t, h, "/"); r.StatusCode != http.StatusNotFound {
				t.Errorf("GET / outside the base path %s: %d", base, r.StatusCode)
			}
		}
	}
}

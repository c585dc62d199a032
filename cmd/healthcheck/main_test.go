package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer ok.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable"}`))
	}))
	defer sick.Close()
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only when the client gives up
	}))
	defer hung.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/healthz"
	l.Close()

	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string // in stderr
	}{
		{"healthy", []string{ok.URL + "/healthz"}, 0, ""},
		{"not found", []string{ok.URL + "/nope"}, 1, "404"},
		{"unhealthy", []string{"-timeout", "1s", sick.URL + "/healthz"}, 1, "503"},
		{"too slow", []string{"-timeout", "100ms", hung.URL}, 1, "deadline exceeded"},
		{"refused", []string{closed}, 1, "refused"},
		{"two urls", []string{ok.URL, ok.URL}, 2, "usage"},
		{"bad flag", []string{"-nope"}, 2, "usage"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != c.code || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, stderr.String(), c.code, c.msg)
		}
	}
}

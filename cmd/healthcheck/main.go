// Command healthcheck is the container image's HEALTHCHECK: the final image has no shell,
// curl or wget, so this probes Starling's monitoring endpoint itself. It exits 0 when the
// URL (default http://127.0.0.1:8222/healthz) answers 200 within the timeout, 1 when it
// does not, and 2 on a usage error.
//
//	healthcheck [-timeout 3s] [URL]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// defaultURL is /healthz on the monitoring port the image starts Starling with (-m 8222).
const defaultURL = "http://127.0.0.1:8222/healthz"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long the whole probe may take")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: healthcheck [-timeout 3s] [URL]")
		return 2
	}
	url := defaultURL
	if fs.NArg() == 1 {
		url = fs.Arg(0)
	}
	if err := probe(url, *timeout); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// probe GETs url and wants 200. No proxy: the server is on this host.
func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	return nil
}

// Command starling is the Starling server: a NATS-compatible core router and, in the same
// process, the NATS-Streaming-compatible streaming layer. Everything lives in package app;
// main stays tiny.
package main

import (
	"context"
	"os"
	"time"

	"github.com/starling-io/starling/cmd/starling/app"
	"github.com/starling-io/starling/cmd/starling/gcfloor"
)

func main() {
	gcfloor.Start(time.Second)
	os.Exit(app.Execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

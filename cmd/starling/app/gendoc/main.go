// Command gendoc writes Starling's configuration reference (docs/configuration.md) from
// the option table: go generate ./cmd/starling/app, or make docs.
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/starling-io/starling/cmd/starling/app"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gendoc FILE")
		os.Exit(2)
	}
	var b bytes.Buffer
	if err := app.WriteReference(&b); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

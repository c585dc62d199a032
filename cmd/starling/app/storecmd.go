package app

import (
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/starling-io/starling/stores/filestore"
)

// runStoreCommand is `starling store verify|repair [--quarantine] DIR`: offline checks of a
// file store's directory. The server must not be running on DIR. Exit codes: 0 healthy (or
// repaired), 1 problems left, 2 usage.
func runStoreCommand(args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: starling store verify DIR | starling store repair [--quarantine] DIR")
		fmt.Fprintln(stderr, "  (stop the server first: the store directory must not be in use)")
		return 2
	}
	if len(args) < 1 {
		return usage()
	}
	verb := args[0]
	fs := flag.NewFlagSet("starling store "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	quarantine := fs.Bool("quarantine", false, "repair: move damaged segments aside (their messages are lost) instead of refusing")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
		return usage()
	}
	dir := fs.Arg(0)
	opts := filestore.Options{Quarantine: *quarantine, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	var rep filestore.Report
	var err error
	switch verb {
	case "verify":
		rep, err = filestore.Verify(dir, opts)
	case "repair":
		rep, err = filestore.Repair(dir, opts)
	default:
		return usage()
	}
	for _, ch := range rep.Channels {
		state := "ok"
		if ch.Damaged {
			state = "DAMAGED"
		}
		fmt.Fprintf(stdout, "channel %-30s %s  first %d last %d msgs %d bytes %d segments %d subs %d\n",
			ch.Name, state, ch.First, ch.Last, ch.Msgs, ch.Bytes, ch.Segments, ch.Subs)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "problem:", p.String())
	}
	for _, q := range rep.Quarantined {
		fmt.Fprintln(stdout, "quarantined:", q)
	}
	if err != nil {
		fmt.Fprintln(stderr, "starling store:", err)
		return 1
	}
	if !rep.OK() {
		return 1
	}
	fmt.Fprintf(stdout, "store %s: %d channel(s), no problems left\n", dir, len(rep.Channels))
	return 0
}

package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/nssimport"
)

// runStoreCommand is `starling store verify|repair [--quarantine] DIR`: offline checks of a
// file store's directory, or of a bolt store's file (runBoltStoreCommand). The server must not be running on DIR. Exit codes: 0 healthy (or
// repaired), 1 problems left, 2 usage. `starling store import` is runStoreImport.
func runStoreCommand(args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: starling store verify DIR | starling store repair [--quarantine] DIR")
		fmt.Fprintln(stderr, "       starling store import --from-nss DIR --dir TARGET [--store file|bolt] [--dry-run]")
		fmt.Fprintln(stderr, "  (stop the server first: the store directory must not be in use)")
		return 2
	}
	if len(args) < 1 {
		return usage()
	}
	verb := args[0]
	if verb == "import" {
		return runStoreImport(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("starling store "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	quarantine := fs.Bool("quarantine", false, "repair: move damaged segments and stray channel directories aside (their messages are lost) instead of refusing")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
		return usage()
	}
	dir := fs.Arg(0)
	if verb != "verify" && verb != "repair" {
		return usage()
	}
	// Not part of the store, so no problem of it: but hidden, and maybe as big as the store.
	for _, p := range stores.ImportLeftovers(dir) {
		fmt.Fprintf(stdout, "warning: %s: the temporary directory of an interrupted import, no part of the store: it may hold what the import did not move (up to the whole store); remove it once you no longer need it\n", p)
	}
	if isBoltStore(dir) {
		return runBoltStoreCommand(verb, dir, stdout, stderr)
	}
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
		// subs.log's records, not subscriptions: one durable is several records (its
		// creation, updates), and the journal in the tail segment holds more.
		fmt.Fprintf(stdout, "channel %-30s %s  first %d last %d msgs %d bytes %d segments %d subs.log records %d\n",
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
		if verb == "repair" && !*quarantine && errors.Is(err, filestore.ErrCorrupt) &&
			slices.ContainsFunc(rep.Problems, func(p filestore.Problem) bool { return !p.Repairable }) {
			// Repair refused damage only quarantine fixes; its error names the library's
			// option, and a user of the command needs the flag.
			fmt.Fprintf(stderr, "starling store: to move the damaged segments or stray channel directories aside (their messages are lost): starling store repair --quarantine %s\n", dir)
		}
		return 1
	}
	if !rep.OK() {
		return 1
	}
	fmt.Fprintf(stdout, "store %s: %d channel(s), no problems left\n", dir, len(rep.Channels))
	return 0
}

// isBoltStore reports whether dir holds a bolt store and no file store.
func isBoltStore(dir string) bool {
	_, errBolt := os.Stat(filepath.Join(dir, storeMark(storeBolt)))
	_, errFile := os.Stat(filepath.Join(dir, storeMark(storeFile)))
	return errBolt == nil && errFile != nil
}

// runBoltStoreCommand is verify and repair on a bolt store's directory: verify checks its
// file read-only, as the server's open would; repair changes nothing (a bolt file has no
// torn tail to cut, and damage inside it has no in-place fix): it verifies, and says so.
func runBoltStoreCommand(verb, dir string, stdout, stderr io.Writer) int {
	path := filepath.Join(dir, storeMark(storeBolt))
	rep, err := boltstore.Verify(path, 0)
	for _, ch := range rep.Channels {
		state := "ok"
		if len(ch.Damaged) > 0 {
			state = "DAMAGED"
		}
		fmt.Fprintf(stdout, "channel %-30s %s  first %d last %d msgs %d bytes %d subs %d\n",
			ch.Name, state, ch.First, ch.Last, ch.Msgs, ch.Bytes, ch.Subs)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stdout, "warning: %s: %s\n", path, w)
	}
	if err != nil {
		fmt.Fprintln(stdout, "problem:", err)
		fmt.Fprintln(stderr, "starling store:", err)
		if verb == "repair" && (errors.Is(err, boltstore.ErrCorrupt) || errors.Is(err, boltstore.ErrForeign)) {
			fmt.Fprintf(stderr, "starling store: repair does not change a bolt store (%s is left as it is): "+
				"restore it from a backup\n", path)
		}
		return 1
	}
	if n := len(rep.Warnings); n > 0 {
		fmt.Fprintf(stdout, "store %s (bolt): %d channel(s), %d client(s), no damage found, %d warning(s) above\n",
			dir, len(rep.Channels), rep.Clients, n)
		return 0
	}
	fmt.Fprintf(stdout, "store %s (bolt): %d channel(s), %d client(s), no problems found\n", dir, len(rep.Channels), rep.Clients)
	return 0
}

// runStoreImport is `starling store import --from-nss DIR --dir TARGET [--store file|bolt]
// [--dry-run] [--user NAME] [--skip-clients] [--file_crc_poly N]`: reads a nats-streaming-server file store
// (stopped) and writes a new Starling store at TARGET, or with --dry-run only prints what
// it would import. Damage in the source fails it with the file and offset, writing nothing.
// Exit codes: 0 imported (or dry run), 1 failure, 2 usage.
func runStoreImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("starling store import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from-nss", "", "nats-streaming-server file store directory (its --dir); the server must be stopped")
	dir := fs.String("dir", "", "directory of the new Starling store (must not exist, or be empty)")
	storeType := fs.String("store", storeFile, "type of the new store: file or bolt (start Starling with the same --store and --dir)")
	dryRun := fs.Bool("dry-run", false, "print what would be imported and write nothing")
	user := fs.String("user", "", "owner of the imported clients and subscriptions: the user their applications authenticate as on Starling (default none: a server without authentication)")
	skipClients := fs.Bool("skip-clients", false, "leave nss's client registrations out: applications still connected must reconnect (their durables resume then)")
	poly := fs.String("file_crc_poly", "", "CRC-32 polynomial nats-streaming-server ran with (its --file_crc_poly; default IEEE)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *from == "" || (*dir == "" && !*dryRun) {
		fmt.Fprintln(stderr, "usage: starling store import --from-nss DIR --dir TARGET [--store file|bolt] [--dry-run] [--user NAME] [--skip-clients] [--file_crc_poly N]")
		return 2
	}
	opts := nssimport.Options{User: *user, SkipClients: *skipClients}
	if *poly != "" {
		p, err := strconv.ParseUint(*poly, 0, 32)
		if err != nil || p == 0 {
			fmt.Fprintf(stderr, "starling store import: --file_crc_poly %q: want a 32-bit polynomial such as 0xedb88320\n", *poly)
			return 2
		}
		opts.CRCPolynomial = uint32(p)
	}
	var open nssimport.OpenFunc
	kind := strings.ToLower(*storeType)
	switch kind {
	case storeFile:
		open = func(d string) (stores.Store, error) {
			return filestore.Open(d, filestore.Options{Limits: &stores.LimitsSet{},
				Logger: slog.New(slog.NewTextHandler(stderr, nil))})
		}
	case storeBolt:
		open = func(d string) (stores.Store, error) {
			return boltstore.Open(filepath.Join(d, "starling.db"), boltstore.Options{Limits: &stores.LimitsSet{}})
		}
	default:
		fmt.Fprintf(stderr, "starling store import: --store %q: want file or bolt\n", *storeType)
		return 2
	}
	if !*dryRun {
		if err := nssimport.CheckTarget(*dir); err != nil {
			fmt.Fprintln(stderr, "starling store import:", err)
			return 1
		}
	}
	src, err := nssimport.Scan(*from, opts)
	if err != nil {
		fmt.Fprintln(stderr, "starling store import:", err)
		fmt.Fprintln(stderr, "starling store import: nothing was written")
		return 1
	}
	src.WriteSummary(stdout)
	if *dryRun {
		fmt.Fprintln(stdout, "dry run: nothing written")
		return 0
	}
	// Ctrl-C stops the import cleanly: killed, it would leave its temporary directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := nssimport.ImportContext(ctx, src, *dir, open, stdout); err != nil {
		fmt.Fprintln(stderr, "starling store import:", err)
		if !errors.Is(err, nssimport.ErrMarkerLeft) { // else the store is whole, and the error says what is left
			fmt.Fprintln(stderr, "starling store import: nothing was written")
		}
		return 1
	}
	fmt.Fprintf(stdout, "imported into %s (%s store): start Starling with --store %s --dir %s --cluster_id %s\n",
		*dir, kind, kind, *dir, src.Info.ClusterID)
	return 0
}

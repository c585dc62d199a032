// Package app is the starling binary as a library: Main parses flags (nats-server's and
// nats-streaming-server's names where the concept is the same) and the configuration file,
// builds every component from plain Options, runs them and reacts to signals. Tests drive
// it in-process exactly as the binary runs.
//
// Start builds core, then (unless --no_streaming) the store, an in-process core.Conn and
// the streaming layer over a raftlog.Local, then monitoring with the streaming endpoints
// mounted beside core's; Close stops them in the reverse order.
//
// Configuration flows one way: configure fills a settings value from defaults, then the
// file (config.go, config_auth.go, config_streaming.go, tls.go, reserved.go: core/conf's
// tree mapped key by key), then the flags given on the command line (flags.go), which win;
// settings.build loads the certificates, builds the auth.Authenticator, validates
// core.Options and the streaming settings (streaming.go: store type, limits through
// stores.LimitsSet.Validate). Every problem is collected, never the first only: a file's
// problems carry file:line:col and the key's dotted path (authorization.users[1].nkey,
// streaming.store_limits.channels.foo), a flag's name the flag. Reload runs the same path
// again and hands the result to core's Server.Reload; streaming settings other than their
// log levels need a restart.
//
// Every flag is defined once, in the option table (flags.go), from which --help (help.go)
// and, with the configuration file's keys (keys.go), the configuration reference
// docs/configuration.md (reference.go; go generate) are written. Logging: one slog handler, text or JSON (loghandler.go), over stderr or the
// log file, which rotates by size and is reopened on SIGUSR1 (logfile.go); core and the
// streaming layer log through it, each filtered at its own level. Nothing logs per message.
package app

//go:generate go run ./gendoc ../../../docs/configuration.md

package app

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/starling-io/starling/core/conf"
)

// ErrHelp is returned by ParseFlags for -h/--help after printing usage.
var ErrHelp = flag.ErrHelp

// ErrInvalidConfig is wrapped by every problem with what a configuration value means (as
// opposed to its syntax, which core/conf reports with its own sentinels): an unknown key, a
// value out of range, a certificate that does not load, a user defined twice.
var ErrInvalidConfig = errors.New("invalid configuration")

// ErrNoConfigFile is returned by Reload when the server was started without -c.
var ErrNoConfigFile = errors.New("reload needs a configuration file (-c)")

// ErrNoPID is returned by --signal when no process is named: give --signal CMD=PID, -P FILE
// or a configuration file with pid_file.
var ErrNoPID = errors.New("no process to signal: give --signal CMD=PID, -P FILE or a configuration file with pid_file")

// ErrNotStarted is returned by Reload before Start.
var ErrNotStarted = errors.New("server not started")

// ConfigError is every problem found in the configuration file and in the flags applied
// over it, reported together. Each problem is a *conf.Error ("file:line:col: key: message")
// when it comes from the file, or an error naming the flag ("flag --tlscert: ...").
type ConfigError struct {
	Errs []error
}

// Error returns one problem per line.
func (e *ConfigError) Error() string {
	var b strings.Builder
	for i, err := range e.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *ConfigError) Unwrap() []error { return e.Errs }

// problems accumulates configuration errors: reading goes on after each one so that the
// user sees all of them at once.
type problems []error

// add records err; conf.Errors (a whole parse) is flattened into its positioned errors.
func (p *problems) add(err error) {
	if err == nil {
		return
	}
	var ces conf.Errors
	if errors.As(err, &ces) {
		for _, e := range ces {
			*p = append(*p, e)
		}
		return
	}
	*p = append(*p, err)
}

// at records a problem at pos with the key's dotted path: "file:line:col: path: message".
func (p *problems) at(pos conf.Pos, path, format string, args ...any) {
	*p = append(*p, newConfError(pos, path, fmt.Errorf(format, args...)))
}

// err returns the accumulated problems as a *ConfigError, or nil.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ConfigError{Errs: p}
}

func newConfError(pos conf.Pos, path string, cause error) *conf.Error {
	return &conf.Error{Pos: pos, Msg: path + ": " + cause.Error(), Err: fmt.Errorf("%w: %w", ErrInvalidConfig, cause)}
}

// origin says where a setting came from, so that a problem found only when the setting is
// used (a certificate that does not load) names the key's file:line:col or the flag.
type origin struct {
	pos  conf.Pos // the key in the file; Line 0 for a flag
	name string   // "tls.cert_file" or "flag --tlscert"
}

// String names o for a message: "file:line:col: key" or "flag --name".
func (o origin) String() string {
	if o.pos.Line == 0 {
		return o.name
	}
	return o.pos.String() + ": " + o.name
}

// wrap returns err as a problem at o, wrapping it.
func (o origin) wrap(err error) error {
	if o.pos.Line == 0 {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return newConfError(o.pos, o.name, err)
}

func fileOrigin(pos conf.Pos, path string) origin { return origin{pos: pos, name: path} }

func flagOrigin(name string) origin { return origin{name: "flag --" + name} }

// errorf returns a problem at o.
func (o origin) errorf(format string, args ...any) error {
	cause := fmt.Errorf(format, args...)
	if o.pos.Line == 0 {
		return fmt.Errorf("%s: %w", o.name, cause)
	}
	return newConfError(o.pos, o.name, cause)
}

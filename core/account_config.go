package core

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/starling-io/starling/core/subject"
)

// Accounts as statically configured (nats-server v2's `accounts { … }` block). Each
// account has its own subject space; exports and imports connect them.

// GlobalAccount is the account of clients whose user names none ($G, as nats-server).
const GlobalAccount = "$G"

// DefaultSystemAccount is the system account when accounts are configured and none is named.
const DefaultSystemAccount = "$SYS"

// AccountConfig is one configured account. Users name their account in auth.User.
type AccountConfig struct {
	Name    string
	Exports []Export
	Imports []Import
}

// Export makes subjects of an account available to others.
type Export struct {
	Service  bool     // a service (requests in, replies back); else a stream
	Subject  string   // may have wildcards
	Accounts []string // who may import it; empty: everyone (public)
	// Responses is how a service answers: ResponseSingleton (default), ResponseStream or
	// ResponseChunked (several replies to one request, within ResponseThreshold).
	Responses         string
	ResponseThreshold time.Duration // 0: DefaultResponseThreshold
}

// DefaultResponseThreshold is how long a service's reply subject stays usable (nats-server's
// default response threshold).
const DefaultResponseThreshold = 2 * time.Minute

// Service response types, as nats-server's `response_type`.
const (
	ResponseSingleton = "singleton"
	ResponseStream    = "stream"
	ResponseChunked   = "chunked"
)

// Import brings another account's export into this one.
type Import struct {
	Service bool
	Account string // the exporting account
	Subject string // the subject as exported (in the exporter's space)
	// To is the subject in the importer's space: for a stream, where the exporter's
	// messages appear (default Subject); for a service, what the importer's clients
	// publish requests to (default Subject). It has Subject's wildcards in order.
	To string
	// Prefix (streams only) is prepended to the exporter's subjects instead of To.
	Prefix string
}

// local is the import's subject in the importer's space.
func (im *Import) local() string {
	switch {
	case im.Prefix != "":
		return im.Prefix + "." + im.Subject
	case im.To != "":
		return im.To
	}
	return im.Subject
}

// AccountError is a problem with one account of Options.Accounts: the configuration layer
// uses Account, Export and Import (-1 when not about one) to say where it was written.
type AccountError struct {
	Account        string
	Export, Import int
	Err            error
}

func (e *AccountError) Error() string {
	where := fmt.Sprintf("account %q", e.Account)
	switch {
	case e.Import >= 0:
		where += fmt.Sprintf(" import %d", e.Import)
	case e.Export >= 0:
		where += fmt.Sprintf(" export %d", e.Export)
	}
	return where + ": " + e.Err.Error()
}

func (e *AccountError) Unwrap() error { return e.Err }

// Sentinels of account configuration problems, wrapped in *AccountError.
var (
	ErrAccountName     = errors.New("invalid or duplicate account name")
	ErrAccountSubject  = errors.New("invalid subject")
	ErrUnknownAccount  = errors.New("no such account")
	ErrNotExported     = errors.New("subject not exported")
	ErrImportForbidden = errors.New("export not open to this account")
	ErrImportCycle     = errors.New("import cycle")
)

// ValidateAccounts checks accounts as a whole and returns every problem: names, subjects,
// imports of what is not exported (or not to this account), and cycles — a subject an
// import brings in that, through other imports, flows back to where it started.
func ValidateAccounts(accs []AccountConfig) []error {
	var errs []error
	fail := func(acc string, exp, imp int, err error) {
		errs = append(errs, &AccountError{Account: acc, Export: exp, Import: imp, Err: err})
	}
	byName := make(map[string]*AccountConfig, len(accs))
	for i := range accs {
		a := &accs[i]
		if a.Name == "" || strings.ContainsAny(a.Name, " \t\r\n.*>") || byName[a.Name] != nil {
			fail(a.Name, -1, -1, ErrAccountName)
			continue
		}
		byName[a.Name] = a
		for j, ex := range a.Exports {
			if !subject.ValidSubject(ex.Subject) {
				fail(a.Name, j, -1, fmt.Errorf("%w %q", ErrAccountSubject, ex.Subject))
			}
			switch ex.Responses {
			case "", ResponseSingleton, ResponseStream, ResponseChunked:
			default:
				fail(a.Name, j, -1, fmt.Errorf("response type %q is not singleton, stream or chunked", ex.Responses))
			}
		}
	}
	for i := range accs {
		a := &accs[i]
		if byName[a.Name] != a {
			continue
		}
		for j := range a.Imports {
			if err := checkImport(byName, a.Name, &a.Imports[j]); err != nil {
				fail(a.Name, -1, j, err)
			}
		}
	}
	if len(errs) > 0 {
		return errs // cycles are only looked for in an otherwise valid configuration
	}
	for i := range accs {
		for j := range accs[i].Imports {
			if err := findCycle(byName, accs[i].Name, &accs[i].Imports[j]); err != nil {
				fail(accs[i].Name, -1, j, err)
			}
		}
	}
	return errs
}

// checkImport checks one import of account name against the exports.
func checkImport(byName map[string]*AccountConfig, name string, im *Import) error {
	kind := "stream"
	if im.Service {
		kind = "service"
	}
	switch {
	case !subject.ValidSubject(im.Subject):
		return fmt.Errorf("%w %q", ErrAccountSubject, im.Subject)
	case im.Prefix != "" && im.Service:
		return errors.New("a service import has no prefix (use to)")
	case im.Prefix != "" && im.To != "":
		return errors.New("a stream import has a prefix or a to, not both")
	case im.Prefix != "" && (!subject.ValidSubject(im.Prefix) || !subject.IsLiteral(im.Prefix)):
		return fmt.Errorf("prefix %q is not a literal subject", im.Prefix)
	case im.To != "" && !subject.ValidSubject(im.To):
		return fmt.Errorf("%w %q", ErrAccountSubject, im.To)
	case im.Account == name:
		return fmt.Errorf("%w: an account cannot import from itself", ErrImportCycle)
	}
	if _, err := subject.NewTransform(im.Subject, im.local()); err != nil {
		return fmt.Errorf("to %q: %w", im.To, err)
	}
	exp := byName[im.Account]
	if exp == nil {
		return fmt.Errorf("%w %q", ErrUnknownAccount, im.Account)
	}
	for _, ex := range exp.Exports {
		if ex.Service != im.Service || !subject.SubsetOf(im.Subject, ex.Subject) {
			continue
		}
		if len(ex.Accounts) > 0 && !containsString(ex.Accounts, name) {
			return fmt.Errorf("%w: %s %q of account %q", ErrImportForbidden, kind, im.Subject, im.Account)
		}
		return nil
	}
	return fmt.Errorf("%w: account %q exports no %s %q", ErrNotExported, im.Account, kind, im.Subject)
}

// findCycle follows the flow of what start brings into account name — requests for a
// service, messages for a stream — through the imports of the same kind and reports a
// cycle when it reaches the account it started from with an overlapping subject.
func findCycle(byName map[string]*AccountConfig, name string, start *Import) error {
	type hop struct{ acc, subj string }
	// For a service, a request on start's local subject goes to the exporter on Subject;
	// for a stream, the exporter's Subject comes into the importer on the local subject.
	var from, next hop
	if start.Service {
		from, next = hop{name, start.local()}, hop{start.Account, start.Subject}
	} else {
		from, next = hop{start.Account, start.Subject}, hop{name, start.local()}
	}
	todo := []hop{next}
	seen := map[hop]bool{}
	for len(todo) > 0 {
		h := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if h.acc == from.acc && subject.Overlap(h.subj, from.subj) {
			return fmt.Errorf("%w: %q in account %q comes back to account %q", ErrImportCycle, start.Subject, start.Account, from.acc)
		}
		if seen[h] || len(seen) > 4096 {
			continue
		}
		seen[h] = true
		for _, a := range byName {
			for k := range a.Imports {
				im := &a.Imports[k]
				if im.Service != start.Service {
					continue
				}
				switch {
				case im.Service && a.Name == h.acc && subject.Overlap(im.local(), h.subj):
					todo = append(todo, hop{im.Account, im.Subject})
				case !im.Service && im.Account == h.acc && subject.Overlap(im.Subject, h.subj):
					todo = append(todo, hop{a.Name, im.local()})
				}
			}
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// canonicalAccounts is a copy of cfgs in one order (accounts by name, then each one's
// exports and imports, and each export's accounts), with empty lists nil: two
// configurations that differ only in the order they were written in come out equal.
func canonicalAccounts(cfgs []AccountConfig) []AccountConfig {
	if len(cfgs) == 0 {
		return nil
	}
	out := make([]AccountConfig, len(cfgs))
	for i, c := range cfgs {
		c.Exports, c.Imports = slices.Clone(c.Exports), slices.Clone(c.Imports)
		for j := range c.Exports {
			c.Exports[j].Accounts = slices.Clone(c.Exports[j].Accounts)
			slices.Sort(c.Exports[j].Accounts)
			if len(c.Exports[j].Accounts) == 0 {
				c.Exports[j].Accounts = nil
			}
		}
		slices.SortFunc(c.Exports, func(x, y Export) int {
			return cmp.Or(cmp.Compare(x.Subject, y.Subject), compareBool(x.Service, y.Service),
				cmp.Compare(x.Responses, y.Responses), cmp.Compare(x.ResponseThreshold, y.ResponseThreshold),
				slices.Compare(x.Accounts, y.Accounts))
		})
		slices.SortFunc(c.Imports, func(x, y Import) int {
			return cmp.Or(cmp.Compare(x.Account, y.Account), cmp.Compare(x.Subject, y.Subject), compareBool(x.Service, y.Service),
				cmp.Compare(x.To, y.To), cmp.Compare(x.Prefix, y.Prefix))
		})
		if len(c.Exports) == 0 {
			c.Exports = nil
		}
		if len(c.Imports) == 0 {
			c.Imports = nil
		}
		out[i] = c
	}
	slices.SortFunc(out, func(x, y AccountConfig) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

func compareBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return 1
	}
	return -1
}

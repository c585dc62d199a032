package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

// User is one entry of a users list: either a user name with a password, or a
// public user nkey (then Username and Password are empty).
type User struct {
	Username string
	Password string // plain text, or a bcrypt hash ($2a$, $2b$, $2x$, $2y$)
	Nkey     string // public user nkey, "U…" (56 characters)

	// Permissions of the user; nil means Options.DefaultPermissions.
	Permissions *Permissions

	// Account names the user's account ("": the global account).
	Account string
}

// Options configures an Authenticator. At most one mechanism may be set: a
// users list (user/password and nkey users), a single user (Username and
// Password), or a Token. None means no authentication.
type Options struct {
	Users              []*User
	Token              string // plain text or a bcrypt hash
	Username, Password string // single user (like --user/--pass); no permissions

	// NoAuthUser names a user of Users (by Username or Nkey) that clients
	// sending no credentials at all are logged in as.
	NoAuthUser string

	// DefaultPermissions apply to every user of Users without Permissions.
	DefaultPermissions *Permissions

	// AlwaysEnableNonce makes NeedsNonce true even without nkey users.
	AlwaysEnableNonce bool

	// BcryptConcurrency bounds the bcrypt checks in progress at once; the
	// others wait (CheckContext). 0 means GOMAXPROCS/2, at least 1.
	BcryptConcurrency int
}

// Credentials is what the client sent in CONNECT, plus the nonce the server
// sent it in INFO (the exact bytes, nil if none).
type Credentials struct {
	User, Pass, Token, Nkey, Sig string
	Nonce                        []byte
}

// Identity is an authenticated client. Identities are built once, by New, and
// shared by every connection of the user: do not modify them.
type Identity struct {
	Name        string       // user name or nkey ("" for token and no auth)
	Token       bool         // the token's identity: shown as nats-server shows it (Shown)
	Permissions *Permissions // as configured; nil: everything allowed
	Checker     *Checker     // Permissions compiled; nil: everything allowed
	Account     string       // the user's account ("": the global account)
}

// Shown is the user as nats-server shows it (/connz authorized_user, $SYS.REQ.USER.INFO,
// the events' client user): the name, or "[REDACTED]" for a token's client, never the token.
func (id *Identity) Shown() string {
	if id.Token {
		return "[REDACTED]"
	}
	return id.Name
}

// mode is the authentication mechanism in force.
type mode uint8

const (
	modeNone   mode = iota // anyone, credentials ignored
	modeUsers              // users list: user/password and nkey users
	modeSingle             // one user name and password
	modeToken              // one token
)

// secret is a configured password or token. A plain one is kept only as its
// SHA-256 digest, so comparing fixed-size digests in constant time leaks
// neither content nor length.
type secret struct {
	bcrypt []byte // the bcrypt hash, or nil for a plain secret
	digest [sha256.Size]byte
}

// isBcrypt reports whether s looks like a bcrypt hash: ^\$2[abxy]\$\d{2}\$.
func isBcrypt(s string) bool {
	return len(s) >= 7 && s[0] == '$' && s[1] == '2' &&
		(s[2] == 'a' || s[2] == 'b' || s[2] == 'x' || s[2] == 'y') && s[3] == '$' &&
		isDigit(s[4]) && isDigit(s[5]) && s[6] == '$'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// newSecret never fails: a malformed bcrypt hash is kept as a hash that no password
// matches (bcrypt refuses it at once), as nats-server keeps it (see MalformedBcrypt).
func newSecret(s string) (secret, error) {
	if isBcrypt(s) {
		return secret{bcrypt: []byte(s)}, nil
	}
	return secret{digest: sha256.Sum256([]byte(s))}, nil
}

// MalformedBcrypt reports why s, which looks like a bcrypt hash (^\$2[abxy]\$\d{2}\$),
// is not a valid one, or nil (for a valid hash or a plain secret). As in nats-server, such
// a password or token is no error: no password matches it, so its user cannot log in (a
// way to lock a user); the configuration reader warns.
func MalformedBcrypt(s string) error {
	if !isBcrypt(s) {
		return nil
	}
	if _, err := bcrypt.Cost([]byte(s)); err != nil {
		return err
	}
	return nil
}

// match reports whether the client's plain text p is the secret. With bcrypt
// it takes as long as the hash's cost says (tens of milliseconds at cost 11):
// Check goes through verifier.match, which bounds and caches that.
func (s *secret) match(p string) bool {
	if s.bcrypt != nil {
		return bcrypt.CompareHashAndPassword(s.bcrypt, []byte(p)) == nil
	}
	d := sha256.Sum256([]byte(p))
	return subtle.ConstantTimeCompare(d[:], s.digest[:]) == 1
}

// account is one configured identity and what proves it.
type account struct {
	id   *Identity
	pass secret        // user/password, single user, token
	key  nkeys.KeyPair // nkey users
}

// Authenticator decides who may connect. Its configuration is immutable after
// New; it is safe for concurrent use. It also owns what makes bcrypt affordable
// (verifier): a bound on the checks in progress and caches of recently checked
// credentials, which therefore last as long as the Authenticator — a reload that
// builds a new one starts them afresh.
type Authenticator struct {
	mode   mode
	byName map[string]*account // users list, by user name
	byNkey map[string]*account // users list, by public nkey
	noAuth *account            // NoAuthUser, or nil
	single *account            // modeSingle (Identity.Name is the user) or modeToken
	anon   *Identity           // modeNone
	nonce  bool
	plain  []string
	verify *verifier
}

// New validates o and builds an Authenticator. All problems are reported at
// once (errors.Join), each wrapping ErrInvalidOptions or ErrInvalidPermission
// and naming the user at fault: conflicting mechanisms, users with neither or
// both of a name and an nkey, duplicate names or nkeys, invalid nkeys, an
// unknown NoAuthUser, invalid permission subjects.
// New logs nothing; see PlainPasswords.
func New(o Options) (*Authenticator, error) {
	a := &Authenticator{nonce: o.AlwaysEnableNonce, verify: newVerifier(o.BcryptConcurrency)}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	def, err := Compile(o.DefaultPermissions) // validated even if no user gets them
	if err != nil {
		errs = append(errs, fmt.Errorf("default permissions: %w", err))
	}
	single := o.Username != "" || o.Password != ""
	switch {
	case len(o.Users) > 0:
		a.mode = modeUsers
		if o.Token != "" {
			bad("a token and a users list are exclusive")
		}
		if single {
			bad("a single user/password and a users list are exclusive")
		}
		errs = a.addUsers(o, def, errs)
	case single:
		a.mode = modeSingle
		if o.Token != "" {
			bad("a user/password and a token are exclusive")
		}
		if o.Username == "" {
			bad("a password without a user name")
		}
		pass, err := newSecret(o.Password)
		if err != nil {
			bad("user %q: %v", o.Username, err)
		}
		a.single = &account{id: &Identity{Name: o.Username}, pass: pass}
		if o.Password != "" && pass.bcrypt == nil {
			a.plain = append(a.plain, o.Username)
		}
	case o.Token != "":
		a.mode = modeToken
		tok, err := newSecret(o.Token)
		if err != nil {
			bad("token: %v", err)
		}
		a.single = &account{id: &Identity{Token: true}, pass: tok}
		if tok.bcrypt == nil {
			a.plain = append(a.plain, "token")
		}
	default:
		a.anon = &Identity{}
	}
	if o.NoAuthUser != "" {
		a.noAuth = a.byName[o.NoAuthUser]
		if a.noAuth == nil {
			a.noAuth = a.byNkey[o.NoAuthUser]
		}
		if a.noAuth == nil {
			bad("no_auth_user %q is not a user or nkey of the users list", o.NoAuthUser)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return a, nil
}

// addUsers fills the users maps from o.Users, compiling each distinct
// Permissions once (def is o.DefaultPermissions compiled), and returns errs
// with any problems appended.
func (a *Authenticator) addUsers(o Options, def *Checker, errs []error) []error {
	a.byName = make(map[string]*account)
	a.byNkey = make(map[string]*account)
	checkers := map[*Permissions]*Checker{o.DefaultPermissions: def}
	compile := func(p *Permissions, who string) *Checker {
		if c, ok := checkers[p]; ok || p == nil {
			return c
		}
		c, err := Compile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", who, err))
		}
		checkers[p] = c
		return c
	}
	for i, u := range o.Users {
		who := fmt.Sprintf("users[%d]", i)
		if u == nil {
			errs = append(errs, fmt.Errorf("%w: %s: nil user", ErrInvalidOptions, who))
			continue
		}
		acc := &account{id: &Identity{Permissions: u.Permissions, Account: u.Account}}
		if acc.id.Permissions == nil {
			acc.id.Permissions = o.DefaultPermissions
		}
		switch {
		case u.Nkey != "":
			who = fmt.Sprintf("nkey user %q", u.Nkey)
			acc.id.Name = u.Nkey
			if u.Username != "" || u.Password != "" {
				errs = append(errs, fmt.Errorf("%w: %s: an nkey user has no user name or password", ErrInvalidOptions, who))
			}
			if a.byNkey[u.Nkey] != nil {
				errs = append(errs, fmt.Errorf("%w: %s: duplicate nkey", ErrInvalidOptions, who))
			}
			key, err := parseUserNkey(u.Nkey)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: %v", ErrInvalidOptions, who, err))
			}
			acc.key = key
			a.byNkey[u.Nkey] = acc
			a.nonce = true
		case u.Username != "":
			who = fmt.Sprintf("user %q", u.Username)
			acc.id.Name = u.Username
			if a.byName[u.Username] != nil {
				errs = append(errs, fmt.Errorf("%w: %s: duplicate user", ErrInvalidOptions, who))
			}
			pass, err := newSecret(u.Password)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: %v", ErrInvalidOptions, who, err))
			}
			acc.pass = pass
			a.byName[u.Username] = acc
			if u.Password != "" && pass.bcrypt == nil {
				a.plain = append(a.plain, u.Username)
			}
		default:
			errs = append(errs, fmt.Errorf("%w: %s: neither a user name nor an nkey", ErrInvalidOptions, who))
			continue
		}
		acc.id.Checker = compile(acc.id.Permissions, who)
	}
	return errs
}

// parseUserNkey decodes a public user nkey, checking prefix and checksum.
func parseUserNkey(pub string) (nkeys.KeyPair, error) {
	if !nkeys.IsValidPublicUserKey(pub) {
		return nil, errors.New("not a valid public user nkey")
	}
	return nkeys.FromPublicKey(pub)
}

// Accounts lists the accounts users belong to (each once; "" is not listed).
func (a *Authenticator) Accounts() []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]*account{a.byName, a.byNkey} {
		for _, acc := range m {
			if n := acc.id.Account; n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// Required reports whether clients must authenticate: the INFO
// "auth_required" field. False without authentication or with a NoAuthUser.
func (a *Authenticator) Required() bool {
	return a.mode != modeNone && a.noAuth == nil
}

// HasCredentials reports whether credentials are configured (users, nkeys, a user or a
// token), even when a NoAuthUser lets clients in without them: /varz auth_required, as
// nats-server reports it.
func (a *Authenticator) HasCredentials() bool { return a.mode != modeNone }

// NeedsNonce reports whether INFO must carry a nonce (NewNonce): nkey users
// exist, or Options.AlwaysEnableNonce.
func (a *Authenticator) NeedsNonce() bool { return a.nonce }

// PlainPasswords returns the names of users whose password is not a bcrypt
// hash, and "token" for a plain token, so that the caller can warn about them.
// Users with an empty password are not listed.
func (a *Authenticator) PlainPasswords() []string {
	return append([]string(nil), a.plain...)
}

// Check authenticates a client (spec §13). Precedence follows the
// configuration: a users list (an nkey with its nonce signature, or a user name
// and password), else a single user or token, else anyone. With a NoAuthUser,
// a client that sent no user, password, token or nkey is logged in as that
// user, without a signature for an nkey user.
//
// On failure the error wraps ErrAuthorization with a detail for the server log
// (never a password or token); the client is told only "Authorization
// Violation". Checking a bcrypt password is slow by design; everything else
// takes microseconds (an nkey signature about 50µs).
//
// Check is CheckContext without a deadline.
func (a *Authenticator) Check(c Credentials) (*Identity, error) {
	return a.CheckContext(context.Background(), c)
}

// CheckContext is Check for a client that may give up: at most
// Options.BcryptConcurrency bcrypt checks run at once, and one that has to wait
// for its turn gives up when ctx ends (the connection's auth timer fired or it
// closed) — it never starts bcrypt after that — and returns an error wrapping
// ErrCheckAborted and ctx's error. A user name and password that passed or
// failed a bcrypt check within VerifiedTTL or RefusedTTL get the same answer
// at once, without waiting and without bcrypt.
func (a *Authenticator) CheckContext(ctx context.Context, c Credentials) (*Identity, error) {
	switch a.mode {
	case modeUsers:
		return a.checkUsers(ctx, &c)
	case modeSingle:
		if c.User != a.single.id.Name {
			return nil, fmt.Errorf("%w: unknown user %q", ErrAuthorization, c.User)
		}
		if err := a.checkPassword(ctx, a.single, c.Pass, c.User); err != nil {
			return nil, err
		}
		return a.single.id, nil
	case modeToken:
		if err := a.checkPassword(ctx, a.single, c.Token, ""); err != nil {
			return nil, err
		}
		return a.single.id, nil
	}
	return a.anon, nil
}

// checkPassword checks p against acc's password (or token, user ""), and
// returns nil, an error wrapping ErrAuthorization, or one wrapping
// ErrCheckAborted.
func (a *Authenticator) checkPassword(ctx context.Context, acc *account, p, user string) error {
	ok, err := a.verify.match(ctx, acc, p)
	if ok {
		return nil
	}
	who := fmt.Sprintf("user %q", user)
	if user == "" {
		who = "token"
	}
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s: waited for a password check: %w", ErrCheckAborted, who, err)
	case user == "":
		return fmt.Errorf("%w: wrong token", ErrAuthorization)
	}
	return fmt.Errorf("%w: %s: wrong password", ErrAuthorization, who)
}

func (a *Authenticator) checkUsers(ctx context.Context, c *Credentials) (*Identity, error) {
	if a.noAuth != nil && c.User == "" && c.Pass == "" && c.Token == "" && c.Nkey == "" {
		return a.noAuth.id, nil
	}
	if c.Nkey != "" && len(a.byNkey) > 0 {
		acc := a.byNkey[c.Nkey]
		if acc == nil {
			return nil, fmt.Errorf("%w: unknown nkey %q", ErrAuthorization, c.Nkey)
		}
		if err := verifyNonce(acc.key, c.Nonce, c.Sig); err != nil {
			return nil, fmt.Errorf("%w: nkey %q: %w", ErrAuthorization, c.Nkey, err)
		}
		return acc.id, nil
	}
	if c.User == "" {
		return nil, fmt.Errorf("%w: no user name or nkey", ErrAuthorization)
	}
	acc := a.byName[c.User]
	if acc == nil {
		return nil, fmt.Errorf("%w: unknown user %q", ErrAuthorization, c.User)
	}
	if err := a.checkPassword(ctx, acc, c.Pass, c.User); err != nil {
		return nil, err
	}
	return acc.id, nil
}

// CheckNames logs a client in by its verified TLS certificate (verify_and_map):
// names are the identities the certificate offers, in the caller's order of
// preference (e-mail addresses, DNS names, subject…); the first that is the
// name of a user of the users list wins, whatever that user's password. Nkey
// users cannot be mapped. Without authentication anyone is accepted; with a
// single user or a token, certificates map to no one. Failures wrap
// ErrAuthorization.
func (a *Authenticator) CheckNames(names []string) (*Identity, error) {
	switch a.mode {
	case modeNone:
		return a.anon, nil
	case modeUsers:
		for _, n := range names {
			if acc := a.byName[n]; acc != nil {
				return acc.id, nil
			}
		}
		return nil, fmt.Errorf("%w: no user for certificate names %q", ErrAuthorization, names)
	}
	return nil, fmt.Errorf("%w: certificate mapping needs a users list", ErrAuthorization)
}

// Revalidate maps id, an Identity that old issued, to the same user in a (the
// new Authenticator after a configuration reload) if what the client proved
// still holds: the same nkey; the same user name with an unchanged password
// (a bcrypt hash counts as unchanged only if identical); the same token; or no
// authentication in either. A client logged in as old's NoAuthUser keeps its
// place only if a has the same NoAuthUser (it may have sent no credentials).
// It returns a's Identity, with the user's current permissions, and true; or
// nil and false when the client must be disconnected.
func (a *Authenticator) Revalidate(old *Authenticator, id *Identity) (*Identity, bool) {
	if old == nil || id == nil {
		return nil, false
	}
	switch old.mode {
	case modeNone:
		if id == old.anon && a.mode == modeNone {
			return a.anon, true
		}
	case modeToken:
		if id == old.single.id && a.mode == modeToken && a.single.pass.equal(&old.single.pass) {
			return a.single.id, true
		}
	case modeSingle:
		if id == old.single.id {
			return a.samePassword(id.Name, &old.single.pass)
		}
	case modeUsers:
		if acc := old.byNkey[id.Name]; acc != nil && acc.id == id {
			if old.noAuth == acc && (a.noAuth == nil || a.noAuth.id.Name != id.Name) {
				return nil, false
			}
			if nacc := a.byNkey[id.Name]; nacc != nil {
				return nacc.id, true
			}
			return nil, false
		}
		if acc := old.byName[id.Name]; acc != nil && acc.id == id {
			if old.noAuth == acc && (a.noAuth == nil || a.noAuth.id.Name != id.Name) {
				return nil, false
			}
			return a.samePassword(id.Name, &acc.pass)
		}
	}
	return nil, false
}

// samePassword returns a's identity for user name if its password is pass.
func (a *Authenticator) samePassword(name string, pass *secret) (*Identity, bool) {
	var acc *account
	switch a.mode {
	case modeUsers:
		acc = a.byName[name]
	case modeSingle:
		if a.single.id.Name == name {
			acc = a.single
		}
	}
	if acc == nil || !acc.pass.equal(pass) {
		return nil, false
	}
	return acc.id, true
}

// equal reports whether two configured secrets are the same: the same bcrypt
// hash, or the same plain text.
func (s *secret) equal(o *secret) bool {
	return bytes.Equal(s.bcrypt, o.bcrypt) && s.digest == o.digest
}

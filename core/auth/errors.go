package auth

import "errors"

// ErrAuthorization is returned by Authenticator.Check when the credentials do
// not authenticate a client. The client is at fault; the server answers
// -ERR 'Authorization Violation' and closes. The returned error may wrap a
// detail for the server log (unknown user, bad signature…); it never contains
// a password or token and must not be sent to the client.
var ErrAuthorization = errors.New("authorization violation")

// ErrInvalidOptions is wrapped by the errors New returns for a configuration
// that cannot work: unknown or duplicate users, bad nkeys, conflicting
// mechanisms. Each error names the user at fault.
var ErrInvalidOptions = errors.New("auth: invalid options")

// ErrInvalidPermission is wrapped by the errors Compile (and New, for each
// user's permissions) returns for a permission entry that is not a valid
// subject, or a "subject queue" entry that does not parse. Each error names the
// entry.
var ErrInvalidPermission = errors.New("auth: invalid permission")

// ErrCheckAborted is returned by Authenticator.CheckContext when its context
// ended while the check waited for its turn to run bcrypt (too many password
// checks in progress): nothing was decided. The router's auth timer has
// normally answered the client already ("Authentication Timeout").
var ErrCheckAborted = errors.New("auth: password check aborted")

package subject

import "errors"

// ErrInvalidSubject is returned by Index.Insert and Index.Remove for a subject
// that is not a valid subscription subject (see ValidSubject). The caller (the
// client) is at fault; the server answers -ERR 'Invalid Subject'.
var ErrInvalidSubject = errors.New("subject: invalid subject")

// ErrNotFound is returned by Index.Remove when no subscription with that
// subject, queue and value (compared with ==) is in the index.
var ErrNotFound = errors.New("subject: subscription not found")

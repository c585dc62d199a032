package wire

import "strconv"

// Error is a protocol error, typed by its consequence for the connection.
//
// Text is sent to the peer as -ERR 'Text'; an empty Text means the connection is closed
// silently, without -ERR. Close says whether the connection is closed after sending. Reason is
// the closed reason recorded for monitoring (/connz), e.g. "Parse Error".
//
// The parser returns only the sentinels below, so callers compare with == or errors.Is.
type Error struct {
	Text   string // -ERR text; "" = nothing is sent
	Close  bool   // connection closed afterwards
	Reason string // closed reason for /connz
}

// Error returns Text, or Reason when Text is empty.
func (e *Error) Error() string {
	if e.Text != "" {
		return e.Text
	}
	return e.Reason
}

// Errors returned by Parser.Parse.
var (
	// ErrUnknownOp: an unknown operation (including route-only ops from a client), a malformed
	// op name, or a payload not followed by exactly CR LF.
	ErrUnknownOp = &Error{Text: "Unknown Protocol Operation", Close: true, Reason: "Parse Error"}

	// ErrProtocol: malformed arguments to PUB, HPUB, SUB or UNSUB (wrong count, a size or max
	// that is not unsigned decimal or overflows, a header size above the total size). The
	// connection is closed without -ERR.
	ErrProtocol = &Error{Close: true, Reason: "Protocol Violation"}

	// ErrMaxControlLine: the argument part of a control line exceeds MaxControlLine.
	ErrMaxControlLine = &Error{Text: "maximum control line exceeded", Close: true,
		Reason: "Maximum Control Line Exceeded"}

	// ErrMaxPayload: a PUB size or HPUB total size exceeds MaxPayload. Reported on the control
	// line, before any payload is read.
	ErrMaxPayload = &Error{Text: "Maximum Payload Violation", Close: true,
		Reason: "Maximum Message Payload Exceeded"}

	// ErrAuthorization: an op other than CONNECT while ExpectConnect is set. The server also
	// sends it for failed authentication.
	ErrAuthorization = &Error{Text: "Authorization Violation", Close: true,
		Reason: "Authentication Failure"}

	// ErrHeadersRequired: HPUB on a connection that did not negotiate headers. The connection
	// is closed without -ERR.
	ErrHeadersRequired = &Error{Close: true, Reason: "Message Header Violation"}
)

// Errors the server sends itself; the parser never returns them.
var (
	// ErrAuthTimeout: no CONNECT within the authentication timeout.
	ErrAuthTimeout = &Error{Text: "Authentication Timeout", Close: true,
		Reason: "Authentication Timeout"}

	// ErrStale: the peer did not answer ping_max PINGs.
	ErrStale = &Error{Text: "Stale Connection", Close: true, Reason: "Stale Connection"}

	// ErrMaxConnections: the server's connection limit is reached; sent after INFO.
	ErrMaxConnections = &Error{Text: "maximum connections exceeded", Close: true,
		Reason: "Maximum Connections Exceeded"}

	// ErrBadProtocol: CONNECT with protocol outside 0..1.
	ErrBadProtocol = &Error{Text: "invalid client protocol", Close: true,
		Reason: "Bad Client Protocol Version"}

	// ErrNoRespondersNeedsHeaders: CONNECT with no_responders but without headers.
	ErrNoRespondersNeedsHeaders = &Error{Text: "no responders requires headers support",
		Close: true, Reason: "No Responders Requires Headers"}

	// ErrInvalidSubject: SUB with a malformed subject. The connection stays open.
	ErrInvalidSubject = &Error{Text: "Invalid Subject"}

	// ErrInvalidPubSubject: PUB to a non-literal subject on a pedantic connection. The
	// connection stays open and the message is still routed.
	ErrInvalidPubSubject = &Error{Text: "Invalid Publish Subject"}

	// ErrMaxSubscriptions: the per-connection subscription limit is reached. The connection
	// stays open.
	ErrMaxSubscriptions = &Error{Text: "maximum subscriptions exceeded"}

	// ErrBadConnect: CONNECT whose argument is not valid JSON. The connection is closed
	// without -ERR.
	ErrBadConnect = &Error{Close: true, Reason: "Protocol Violation"}

	// ErrTLSRequired: the TLS handshake did not finish within the TLS timeout.
	ErrTLSRequired = &Error{Text: "Secure Connection - TLS Required", Close: true, Reason: "TLS Handshake Failure"}
)

// The subjects, queues and sids in permission errors are quoted as nats-server quotes them
// (Go's %q): control bytes, quotes and backslashes escaped.

// PermPub returns the -ERR text for a publish permission violation:
// Permissions Violation for Publish to "<subject>".
func PermPub(subject []byte) string {
	return `Permissions Violation for Publish to ` + strconv.Quote(string(subject))
}

// PermPubReply returns the -ERR text for a forbidden reply subject:
// Permissions Violation for Publish with Reply of "<reply>".
func PermPubReply(reply []byte) string {
	return `Permissions Violation for Publish with Reply of ` + strconv.Quote(string(reply))
}

// PermSub returns the -ERR text for a subscribe permission violation:
// Permissions Violation for Subscription to "<subject>", followed by
// ` using queue "<queue>"` when queue is not empty.
func PermSub(subject, queue []byte) string {
	s := `Permissions Violation for Subscription to ` + strconv.Quote(string(subject))
	if len(queue) > 0 {
		s += ` using queue ` + strconv.Quote(string(queue))
	}
	return s
}

// PermSubRevoked returns the -ERR text for a subscription removed because a
// configuration reload revoked it: PermSub followed by ` (sid "<sid>")`, as the
// reference server sends, so the client can tell which subscription went.
func PermSubRevoked(subject, queue, sid []byte) string {
	return PermSub(subject, queue) + ` (sid ` + strconv.Quote(string(sid)) + `)`
}

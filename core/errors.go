package core

import "errors"

// Closed-connection reasons, exactly as /connz reports them.
const (
	reasonClientClosed        = "Client Closed"
	reasonReadError           = "Read Error"
	reasonWriteError          = "Write Error"
	reasonProtocolViolation   = "Protocol Violation"
	reasonSlowConsumerPending = "Slow Consumer (Pending Bytes)"
	reasonSlowConsumerWrite   = "Slow Consumer (Write Deadline)"
	reasonStale               = "Stale Connection"
	reasonShutdown            = "Server Shutdown"
)

var (
	// ErrConnClosed is returned by Conn methods after Close or server shutdown.
	ErrConnClosed = errors.New("core: connection closed")
	// ErrBadSubject is returned for an invalid subject or queue name.
	ErrBadSubject = errors.New("core: invalid subject")
	// ErrNoResponders is returned by Conn.Request when nobody is subscribed.
	ErrNoResponders = errors.New("core: no responders available for request")
	// ErrMaxPayload is returned when a message is larger than max_payload.
	ErrMaxPayload = errors.New("core: maximum payload exceeded")

	// errClientErr stops parsing after a client sent -ERR (it has been closed already).
	errClientErr = errors.New("core: client sent -ERR")
	// errClosed stops parsing a client closed meanwhile (by another goroutine, or by its
	// own delivery to itself): the rest of its read buffer is dropped.
	errClosed = errors.New("core: client closed")
)

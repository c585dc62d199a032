package streaming

import "errors"

// Error texts returned in protocol responses; stan.go surfaces them verbatim (spec §11).
const (
	errInvalidConnReq     = "stan: invalid connection request"
	errInvalidClientID    = "stan: invalid clientID: only alphanumeric and `-` or `_` characters allowed"
	errDuplicateClient    = "stan: clientID already registered"
	errInvalidPubReq      = "stan: invalid publish request"
	errInvalidSubReq      = "stan: invalid subscription request"
	errMissingClient      = "stan: clientID missing"
	errInvalidAckWait     = "stan: invalid ack wait time, should be >= 1s"
	errInvalidMaxInflight = "stan: invalid MaxInflight, should be >= 1"
	errInvalidStart       = "stan: invalid start position"
	errInvalidSubject     = "stan: invalid subject"
	errUnknownClient      = "stan: unknown clientID"
	errDuplicateDurable   = "stan: duplicate durable registration"
	errDurableQueueColon  = "stan: durable name of a durable queue subscriber can't contain the character ':'"
	errInvalidUnsubReq    = "stan: invalid unsubscribe request"
	errUnknownChannel     = "stan: unknown channel"
	errInvalidSub         = "stan: invalid subscription"
	errInvalidCloseReq    = "stan: invalid close request"
	errClientReplaced     = "client has been replaced or is no longer registered"

	// Refusals of our own (the reference has no such limits); stan.go shows them verbatim.
	errClientIDTooLong = "stan: invalid clientID: longer than 256 bytes"
	errTooManyClients  = "stan: too many clients"
	errMsgTooLarge     = "stan: message too large: once delivered it would exceed max_payload"
	errOverloaded      = "stan: server is overloaded"
	errStoreFailing    = "stan: the channel's store is failing (see the server log)"
)

// ErrClosed is returned by Server methods after Shutdown.
var ErrClosed = errors.New("streaming: server closed")

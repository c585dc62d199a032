// Package wire parses and encodes the NATS client text protocol.
//
// It knows nothing of the server: a Parser turns the bytes read from a connection into calls
// on a Handler (ProcessPub, ProcessSub, ...), and the Append* functions encode the operations
// a server or client sends. Protocol failures are reported as *Error values typed by their
// consequence: the text to send as -ERR (if any), whether the connection must be closed, and
// the reason recorded for monitoring.
//
// The parser is a byte state machine over the caller's read buffer, after the design of
// nats-server's parser:
//
//   - arguments are sub-slices of the read buffer, handed to the Handler during the call only;
//   - a payload that is entirely in the buffer is jumped over, not scanned, and passed as a
//     sub-slice;
//   - a control line split across reads is copied into a scratch array sized to the control
//     line limit (allocated once), a payload split across reads into a reusable message
//     buffer (grown once, reused; a buffer above 64 KiB is released after its message, so a
//     rare large message does not pin memory on an idle connection).
//
// PUB and HPUB written the way clients write them take a one-pass fast path (fastpath.go);
// everything else, and every error, goes through the state machine, and the tests and
// fuzzers check that splitting the input anywhere never changes the result.
//
// The parser never allocates in steady state, and never retains the caller's buffer after
// Parse returns. Memory held per connection is bounded by MaxControlLine and MaxPayload: a
// peer that sends an endless line without a newline is rejected as soon as the line exceeds
// the limit.
//
// The Parser is not safe for concurrent use; one belongs to one connection's read loop.
package wire

// Package nssimport reads a nats-streaming-server (v0.25) file store, offline, and writes
// its state into a new Starling store: the server identity, the registered clients, and
// every channel with its messages (sequences, timestamps, reply subjects, data) and its
// subscriptions (durables, queue groups and their shadows, plain ones) with their positions
// and pending messages. `starling store import --from-nss` is its command.
//
// Scan reads and checks everything first, writing nothing: every record's CRC-32 and
// framing, every payload's protobuf, the sequences of each channel across its file slices.
// Damage is a *FormatError naming the file and the byte offset of the record at fault.
// What nats-streaming-server itself recovers from is tolerated and reported in
// Source.Notes: an index file that does not match its data file (the messages are read
// from the data file, as nss does), zero padding at the end of a file, timestamps going
// back (raised, since Starling's stores keep times in order).
//
// Import then builds the Starling store in a temporary directory inside the target (made
// if missing), reading the messages again, and moves it into place once it is closed, the
// target holding a marker stores refuse to open until it is whole: a failure leaves
// nothing behind, a crash nothing that opens as a store it is not. The store is opened by the caller (OpenFunc), so this package
// depends on the stores contract only.
//
// FORMAT.md describes the nss layout as read here, and what is not imported.
package nssimport

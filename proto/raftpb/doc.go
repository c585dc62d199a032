// Package raftpb is the encoding of replicated streaming operations and of the metadata snapshot:
// a log entry is a Batch of Op (publish batch, client connect/disconnect, subscribe, unsubscribe or
// close, sent/ack records, channel delete), each a oneof member, plus an Op.Ignorable flag that lets
// a node skip an op it does not know during a rolling upgrade (otherwise an unknown op must stop
// the node: replicated state may not diverge). Snapshot holds clients and, per channel, its
// sequence range and subscriptions with their pending sequences — never the messages.
//
// proto/* import nothing of ours, so the client-protocol messages an op carries (MsgProto,
// ConnectRequest, SubscriptionRequest) and the store records a snapshot carries (ClientInfo,
// SubState) are declared here again with the same field numbers and types as in stanpb and
// storepb: their encodings are interchangeable, as this package's tests check.
//
// The source is raft.proto; the generated code is in *.pb.go (committed; regenerate with
// `make proto`).
package raftpb

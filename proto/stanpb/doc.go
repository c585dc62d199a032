// Package stanpb is the NATS Streaming (STAN) client protocol on the wire: the protobuf messages
// that github.com/nats-io/stan.go v0.10.4 exchanges with a streaming server (PubMsg, PubAck,
// MsgProto, Ack, ConnectRequest/Response, Ping/PingResponse, SubscriptionRequest/Response,
// UnsubscribeRequest, CloseRequest/Response). Field numbers and types are exactly those of the
// reference (proto package "pb"); see shared/spec/streaming-protocol.md §3.
//
// The source is stan.proto; the generated code is in *.pb.go (committed; regenerate with
// `make proto`). Encoding: proto3 — zero values are omitted, so an all-zero message is a zero-byte
// payload, and unknown fields are skipped.
package stanpb

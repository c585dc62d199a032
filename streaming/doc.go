// Package streaming is Starling's at-least-once layer: the NATS Streaming (STAN) protocol
// carried in core NATS messages, served in-process on top of core through a Bus (a
// core.Conn), with messages kept in a stores.Store.
//
// Every state change goes encode → raftlog.Log.Propose → Apply (this package implements
// raftlog.StateMachine) → leader-only effects once the proposal resolves: PubAcks,
// deliveries and request replies. Standalone the Log is raftlog.Local, which applies in the
// proposer's goroutine without encoding, so the seam costs nothing; clustered, the same
// code runs on hashicorp/raft.
//
// See DESIGN.md for the goroutine model and batching.
package streaming

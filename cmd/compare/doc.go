// Command compare runs `nats bench` (natscli v0.5.0) against nats-server and Starling on this
// machine and prints a Markdown report: the median msgs/s of each scenario on each server and
// their ratio, then stan-bench (stan.go v0.10.4) against nats-streaming-server v0.25.6 and
// Starling's streaming layer (both with the memory store), then the same with durable stores
// (nats-streaming-server's FILE store against Starling's file and bolt stores) plus replay rows
// on the file and memory stores, then synchronous publishes (stan.go's Publish, with p50/p99
// latency) beside the disk's own write+fsync rate, then issue 13's targets in one list, then
// the cluster rows (nats bench with the publisher on one server of a two-server cluster and
// the subscriber on the other; RSS and CPU of an idle three-server mesh holding 100,000
// subscriptions), then each server's memory while holding 10,000 idle connections.
//
//	go run ./cmd/compare -starling bin/starling -nats-server bin/nats-server -nats bin/nats \
//	  -stan-bench bin/stan-bench -nats-streaming-server bin/nats-streaming-server
//
// Every run gets a freshly started server on fresh loopback ports, and the two servers take
// turns (A B, then B A) so that a change in the machine's load during the run does not favour
// one of them. The report goes to stdout and progress to stderr; the exit status is 1 when a
// measurement failed (a server that does not start, a bench that times out, stalls or prints
// nothing parsable), never because of a ratio, and 2 on bad flags.
//
// Files: servers.go starts, probes and stops servers; bench.go runs `nats` processes and parses
// their output; scenarios.go defines and runs the scenarios; rawclient.go is the minimal NATS
// protocol client for the queue group and idle connections; perms.go is the permissions
// scenario's config file and its pre-run check; memory.go is the idle-connection test; report.go
// prints; streaming.go runs and parses stan-bench, streaming_report.go prints its section;
// durable.go runs the durable-store rows, replay.go their load-then-replay rows (stan.go in
// process), durable_report.go prints their section; syncpub.go runs the synchronous publish
// rows, diskrate.go the disk's write+fsync rate, syncpub_report.go prints their section;
// targets.go gathers issue 13's targets from those sections; cluster.go starts clusters and runs the
// cluster rows, mesh.go the idle mesh, cluster_report.go prints their section.
package main

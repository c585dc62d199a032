// Package monitor serves the streaming layer's monitoring data over HTTP, with
// nats-streaming-server's paths and JSON names: /streaming (an index page),
// /streaming/serverz, /streaming/storez, /streaming/clientsz, /streaming/channelsz and
// /streaming/isFTActive.
//
// It only adapts: the data comes from streaming.Server's methods (Serverz, Clients,
// Channels, StoreType), and the store limits shown by storez are handed in by whoever
// configured them. It has no listener of its own: Routes returns the handlers, and the
// binary mounts them on core's monitoring server (core/monitor's Monitor.Handle), so they
// share its port, base path and request counters.
//
// Collector (metrics.go) gives the same figures to Prometheus, per server, channel and
// subscription; the binary registers it with core/monitor's Monitor.Register, so they are
// served on its /metrics.
package monitor

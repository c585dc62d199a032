// Package core is Starling's at-most-once router: it accepts NATS client connections,
// parses the text protocol (core/wire), matches subjects (core/subject) and delivers
// messages to plain subscribers and one member of each queue group.
//
// Concurrency in one paragraph: every socket client has a read goroutine (parse, route,
// deliver) and a write goroutine (flush). A delivery appends a frame to the destination's
// outbound buffer under the destination's lock and records the destination in the
// producer's pending set; when the producer reaches the end of its read buffer it signals
// each pending destination once, so a thousand messages to one subscriber cost one
// wake-up and one write. The in-process Conn is a client without a socket: its
// subscriptions call a handler on the publisher's goroutine.
//
// Monitoring data is exposed as methods returning plain values (Varz, Connz, Subsz,
// Healthz); HTTP lives in core/monitor.
package core

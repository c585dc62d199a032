// Package tests holds Starling's end-to-end tests: the real nats.go client and the nats
// CLI against Starling in-process (cmd/starling/app) and as the built binary, over real
// sockets. It also enforces the architecture's import rules (arch_test.go).
package tests

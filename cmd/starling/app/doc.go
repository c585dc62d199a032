// Package app is the starling binary as a library: Main parses flags (nats-server's names
// where the concept is the same), builds every component from plain Options, runs them and
// reacts to signals. Tests drive it in-process exactly as the binary runs.
package app

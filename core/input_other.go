//go:build !linux

package core

// inputIdle: without FIONREAD, a connection is never known to be idle.
func (c *client) inputIdle() bool { return false }

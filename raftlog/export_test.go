package raftlog

import "github.com/hashicorp/raft"

// SetHandOffHook makes every HandOff of a node started with c call f with the ID of each
// voter it is about to try, before it checks that it still holds the leadership it hands off.
func SetHandOffHook(c *Config, f func(to string)) { c.handingOffTo = f }

// RaftTransport is the transport a Node gives raft over t.
func RaftTransport(t raft.Transport) raft.Transport {
	if c := newContacts(t, "self", &transferGuard{}, &leaving{}); c != nil {
		return c
	}
	return t
}

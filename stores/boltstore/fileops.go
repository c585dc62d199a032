package boltstore

import (
	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores/rawsync"
)

// fileOps make bbolt's system calls on the store's file while it commits — the pwrites of
// pages and meta, the fstat of DB.grow (at every commit that raises the high-water mark, so
// at nearly every commit of messages) and fdatasync — raw calls on 64-bit Linux (amd64, arm64), through the
// vendored bbolt's FileOps (third_party/bbolt/README.md), under stores/rawsync's policy:
// one raw call at a time, none with a single P, none for 10 s after one slower than 20 ms.
// Elsewhere rawsync's functions are the ordinary calls.
//
// Why: the ordinary fstat woke the runtime's sysmon out of its deep sleep at every commit
// (all Ps idle between a publisher's acknowledgement windows), which then polled every
// 20 µs for ~1 ms: 11-14 % of the server's CPU on durable async 1 KiB publishes; the
// ordinary fdatasync and pwrites let sysmon hand the committer's P to another thread.
var fileOps = bolt.FileOps{
	Fdatasync: rawsync.Fdatasync,
	Size:      rawsync.Size,
	WriteAt:   rawsync.WriteAt,
}

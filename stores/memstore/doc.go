// Package memstore is the memory implementation of stores.Store: everything lives in
// RAM and nothing survives the process (every Sync is a no-op). It is the default store
// and the reference behaviour for stores/storetest.
//
// Append copies each message's Reply and Data once, into per-channel chunk arenas; with
// limits in force, emptied chunks are reused, so appending allocates nothing in steady
// state. Load copies into the caller's Msg. On 64-bit Linux the chunks are mapped outside
// the Go heap, so the garbage collector's work does not grow with the messages stored.
// See DESIGN.md.
package memstore

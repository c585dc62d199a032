// Package memstore is the memory implementation of stores.Store: everything lives in
// RAM and nothing survives the process (every Sync is a no-op). It is the default store
// and the reference behaviour for stores/storetest.
//
// Append copies each message's Reply and Data once, into per-channel chunk arenas; with
// limits in force, emptied chunks are reused, so appending allocates nothing in steady
// state. Load copies into the caller's Msg. See DESIGN.md.
package memstore

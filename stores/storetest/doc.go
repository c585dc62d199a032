// Package storetest is the behavioural suite every stores.Store implementation must pass,
// and the benchmarks every store reports. It is imported only by _test.go files.
//
//	func TestSuite(t *testing.T) {
//		storetest.Run(t, func(tb testing.TB, dir string) stores.Store { ... }, storetest.Caps{Durable: true})
//	}
//	func BenchmarkStore(b *testing.B) { storetest.Bench(b, open) }
//
// open must return a store on dir with default limits: a fresh one for a new dir, and for
// a durable store, the store previously closed on that dir. Run covers messages (append,
// load, state, contiguity, SeqAtTime, limits by count, bytes and age, Expire timing),
// channels, clients, subscriptions with pending sets, closing, concurrent Load during
// Append and Expire, and a model-checked random-operation test. With Caps.Durable every
// part is also checked across a Close and reopen; with Caps.Crash, across a simulated
// kill -9.
package storetest

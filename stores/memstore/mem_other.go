//go:build !(linux && (amd64 || arm64))

package memstore

// Elsewhere than 64-bit Linux (amd64, arm64), blocks and directories come from the Go heap: pointer-free
// blocks, which the GC marks but never scans (see mem_linux.go for the mapped version).

func mapBytes(n int) []byte { return make([]byte, n) }

func unmapBytes([]byte) {}

func makeDir(n int) []chunk { return make([]chunk, n) }

func freeDir([]chunk) {}

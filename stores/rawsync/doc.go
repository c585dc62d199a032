// Package rawsync makes a store's system calls on its commit path — fsync, fdatasync,
// fstat, pwrite, write — as raw system calls on 64-bit Linux (amd64, arm64), which keep
// the calling goroutine's P, under one policy shared by the file store (its commit fsync,
// and its files' writes up to 1 MiB: a pass's flush, and the logs' and journal's writes
// besides) and the bolt store (bbolt's pwrites, size check and fdatasync, through the
// vendored bbolt's FileOps).
//
// Why: an ordinary system call (entersyscall) lets the runtime's sysmon take the caller's P
// once the call has run 20-40 µs while the other Ps are busy — it wakes or starts a thread
// to run the P, and the returning call finds no P and parks its goroutine for yet another
// thread — and, when every P was idle, it wakes sysmon out of its deep sleep, after which
// sysmon polls every 20 µs for ~1 ms. On the 2-core VM this was measured on, each of those
// thread switches costs 15-30 µs of CPU, and sysmon's polling after bbolt's fstat at every
// commit took 11-14 % of the server's CPU on durable async 1 KiB publishes (bolt store).
//
// The cost: during a raw call its P runs nothing else, and a stop of the world (a GC phase)
// waits for the call to return — with every other P already stopped for it, so the whole
// process waits. Hence the policy: only one raw call at a time (a concurrent call is the
// ordinary one, so at least one P stays free); with a single P, always the ordinary call;
// and after a raw call slower than 20 ms (a disk that stalls, writeback throttling a
// pwrite), the ordinary call for 10 s. A stall that begins during a raw call still holds
// the process up at the next GC until that call returns: once per stall at most.
//
// Errors are what the ordinary calls return: *os.PathError wrapping the errno (EINTR is
// retried), os.ErrClosed for a closed file (Fdatasync: EBADF, as bbolt's own
// syscall.Fdatasync(int(f.Fd())) reports); WriteAt writes all of b or reports an error, as
// os.File.WriteAt does; Write, as os.File.Write, returns the bytes written with its error.
// Elsewhere (other systems, 32-bit or other Linux ports, whose pwrite64 and fstat take
// other arguments) every function is the ordinary call.
package rawsync

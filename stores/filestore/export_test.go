package filestore

// Abandon releases s's files without writing or syncing anything, as kill -9 would: for the
// external tests (package filestore_test, which may import crashtest).
func Abandon(s *Store) { s.abandon() }

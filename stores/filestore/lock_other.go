//go:build !unix

package filestore

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// flock does nothing where flock(2) is missing: the directory is not locked there.
func flock(*os.File, bool) error { return nil }

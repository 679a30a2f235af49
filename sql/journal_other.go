//go:build !linux

package sql

import (
	"errors"
	"os"
)

// journalSupported: elsewhere the access log is committed directly, as on
// PostgreSQL.
const journalSupported = false

var errLocked = errors.New("locked by another process")

func lockFile(*os.File, bool) error { return errors.New("the access journal is not supported here") }

func openDirect(string) (*os.File, error) { return nil, errors.New("no direct I/O here") }

func fdatasync(f *os.File) error { return f.Sync() }

func syncDir(string) error { return nil }

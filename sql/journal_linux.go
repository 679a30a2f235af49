package sql

import (
	"errors"
	"os"
	"syscall"
)

// journalSupported: the access journal needs flock, fdatasync and fallocate.
const journalSupported = true

var errLocked = errors.New("locked by another process")

// lockFile takes an exclusive flock on f, held until f is closed; with try it
// returns errLocked instead of waiting. flock locks belong to the open file, so
// closing another descriptor of the same file does not drop them (unlike POSIX
// record locks).
func lockFile(f *os.File, try bool) error {
	how := syscall.LOCK_EX
	if try {
		how |= syscall.LOCK_NB
	}
	err := syscall.Flock(int(f.Fd()), how)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}

// openDirect opens path for synchronous direct writes: each write reaches the
// disk before it returns, bypassing the page cache. Some file systems (tmpfs)
// refuse O_DIRECT; the caller then writes and fdatasyncs.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT|syscall.O_DSYNC, 0)
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// syncDir makes the creation, renaming or removal of a file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

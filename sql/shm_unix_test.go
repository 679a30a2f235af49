//go:build unix

package sql

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// shmLockEnv names the database whose -shm file TestShmLockProbe probes.
const shmLockEnv = "STEWARD_SHM_LOCK_PROBE"

// TestShmLockProbe is not a test: run by TestStoreKeepsSQLiteShmLock in a process
// of its own, it asks the kernel whether any process holds a lock on byte 128 of
// the database's -shm file, where SQLite keeps its "database in use" lock (the
// DMS lock of the unix VFS). Only another process can see a lock this way.
func TestShmLockProbe(t *testing.T) {
	path := os.Getenv(shmLockEnv)
	if path == "" {
		return // run as a test, it does nothing
	}
	f, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 128, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if lk.Type == syscall.F_UNLCK {
		t.Fatal("no process holds SQLite's lock on the -shm file")
	}
}

// TestStoreKeepsSQLiteShmLock checks that opening a store, whose snapshot cache
// maps the -shm file, leaves SQLite's lock on that file in place: a descriptor of
// it closed by the process would drop the lock, and the next process to open the
// database would reset the shared memory under the running one.
func TestStoreKeepsSQLiteShmLock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	path := snapPath(t)
	s := snapOpen(t, path)
	snapSeed(t, s)
	if _, err := s.PurposeSnapshot(t.Context(), "s1", "health", []string{"name"}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestShmLockProbe$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), shmLockEnv+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("probe from another process: %v\n%s", err, out)
	}
}

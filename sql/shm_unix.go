//go:build unix

package sql

import (
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// walIndexHeader is the 48-byte WAL-index header of a SQLite database in WAL
// mode, as 32-bit words (https://www.sqlite.org/walformat.html, section 2.2.1).
type walIndexHeader [12]uint32

// shmHeader is a read-only shared mapping of the start of a database's "-shm"
// file, where SQLite keeps two copies of the WAL-index header.
type shmHeader struct {
	f   *os.File
	mem []byte
}

// mapShm maps the first page of path's "-shm" file read-only. SQLite creates the
// file when the first connection in WAL mode reads, and keeps it while any
// connection is open, so it is mapped after the store's connections are.
//
// The descriptor stays open until close, which runs after the store's
// connections are closed: SQLite holds POSIX locks on the -shm file (one tells
// other processes the database is in use), and closing any descriptor of a file
// drops every POSIX lock the process holds on it. Closed early, another process
// opening the database would take itself for the first and reset the shared
// memory under this one.
func mapShm(path string) (*shmHeader, error) {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return nil, err
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, os.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		// Keep f open: closing it here would drop SQLite's locks just the same.
		return &shmHeader{f: f}, err
	}
	return &shmHeader{f: f, mem: mem}, nil
}

// read returns the WAL-index header and whether it was read consistently: SQLite
// writes the second copy, then the first, so a reader that reads the first, then
// the second, and finds them equal read a header no writer was changing. Before
// SQLite initializes the header (isInit, byte 12) it is not consistent either.
func (s *shmHeader) read() (h walIndexHeader, ok bool) {
	if s == nil || s.mem == nil {
		return h, false
	}
	var second walIndexHeader
	for i := range h {
		h[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.mem[4*i])))
	}
	for i := range second {
		second[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.mem[48+4*i])))
	}
	return h, h == second && s.mem[12] != 0
}

// close unmaps the header and closes the descriptor; call it only once the
// store's SQLite connections are closed (see mapShm).
func (s *shmHeader) close() {
	if s == nil {
		return
	}
	if s.mem != nil {
		syscall.Munmap(s.mem)
	}
	s.f.Close()
}

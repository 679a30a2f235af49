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
	mem []byte
}

// mapShm maps the first page of path's "-shm" file read-only. SQLite creates the
// file when the first connection in WAL mode reads, and keeps it while any
// connection is open, so it is mapped after the store's connections are.
func mapShm(path string) (*shmHeader, error) {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor; SQLite takes no lock through it
	mem, err := syscall.Mmap(int(f.Fd()), 0, os.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &shmHeader{mem: mem}, nil
}

// read returns the WAL-index header and whether it was read consistently: SQLite
// writes the second copy, then the first, so a reader that reads the first, then
// the second, and finds them equal read a header no writer was changing. Before
// SQLite initializes the header (isInit, byte 12) it is not consistent either.
func (s *shmHeader) read() (h walIndexHeader, ok bool) {
	if s == nil {
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

func (s *shmHeader) close() {
	if s != nil {
		syscall.Munmap(s.mem)
	}
}

//go:build !unix

package sql

import "errors"

type walIndexHeader [12]uint32

type shmHeader struct{}

func mapShm(string) (*shmHeader, error) {
	return nil, errors.New("shared memory mapping is not supported here")
}

func (s *shmHeader) read() (walIndexHeader, bool) { return walIndexHeader{}, false }

func (s *shmHeader) close() {}

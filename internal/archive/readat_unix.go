//go:build unix

package archive

import (
	"os"
	"syscall"
)

// readFileAt reads the file at path from offset off into buf until buf is full or the file
// ends, and returns the number of bytes read. It costs three system calls (open, pread,
// close) where an *os.File also registers the descriptor with the poller and sets it
// non-blocking, which doubles the calls for a build of many small files. A read that
// returns fewer bytes than asked once at least min bytes are in is taken as the end of
// the file, as it is for a regular file; below min it reads on until a read returns 0.
func readFileAt(path string, buf []byte, off int64, min int) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Pread(fd, buf[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "read", Path: path, Err: err}
		}
		n += m
		if m == 0 || n >= min && n < len(buf) {
			break
		}
	}
	return n, nil
}

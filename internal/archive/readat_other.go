//go:build !unix

package archive

import (
	"errors"
	"io"
	"os"
)

// readFileAt reads the file at path from offset off into buf until buf is full or the file
// ends, and returns the number of bytes read; min is the unix version's hint, unused here.
func readFileAt(path string, buf []byte, off int64, min int) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

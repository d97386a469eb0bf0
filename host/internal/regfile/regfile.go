// Package regfile reads files that come from places an operator or a
// developer does not fully control (a watched plugin directory, a mounted
// ConfigMap) without letting the file decide how long the read takes or how
// much memory it costs.
//
// os.ReadFile trusts the name: open(2) of a FIFO blocks until a writer
// comes, and a symlink to /dev/zero reads for ever. Read opens without
// blocking, looks at what it opened (fstat, so a name swapped between the
// check and the open cannot fool it), refuses anything but a regular file,
// and reads at most a stated limit. Symlinks to regular files are followed:
// Kubernetes swaps ConfigMap volumes through them.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// NotRegularError is returned for a path that names a FIFO, a device, a
// socket, a directory or anything else that is not a regular file.
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file; only regular files are read", e.Path, Kind(e.Mode))
}

// TooLargeError is returned for a file larger than the limit it was read with.
type TooLargeError struct {
	Path string
	// Limit is the most bytes allowed, and LimitName what declares it.
	Limit     int64
	LimitName string
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes (%s)", e.Path, e.Limit, e.LimitName)
}

// ErrChanged says a file changed while it was read: a writer has not
// finished. The caller should wait for the writer (its next event) rather
// than use the bytes.
var ErrChanged = errors.New("changed while it was read; waiting for the writer to finish")

// Kind names a file mode's type the way a person would.
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return "not a regular file"
}

// Read returns the whole content of the regular file at path (symlinks
// followed), refusing with a *NotRegularError anything else and with a
// *TooLargeError a file longer than limit bytes, before reading it when its
// size says so and after limit+1 bytes when it grows. It never blocks on
// open, and it fails with ErrChanged when the file's size or modification
// time moved while it was read. Its cost is one open, two fstats and one
// read of the file; the buffer is sized from the file's size.
func Read(path string, limit int64, limitName string) ([]byte, error) {
	// A stat first, so that a device is never even opened (opening some has
	// effects); the fstat after the open is what the decision rests on.
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: fi.Mode()}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: before.Mode()}
	}
	if before.Size() > limit {
		return nil, &TooLargeError{Path: path, Limit: limit, LimitName: limitName}
	}
	buf := make([]byte, 0, before.Size()+1)
	for r := io.LimitReader(f, limit+1); ; {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if int64(len(buf)) > limit {
		return nil, &TooLargeError{Path: path, Limit: limit, LimitName: limitName}
	}
	after, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || int64(len(buf)) != after.Size() {
		return nil, fmt.Errorf("%s %w", path, ErrChanged)
	}
	return buf, nil
}

//go:build !linux

package memfile

import "os"

// File is one memory-only file; on this system none can be made.
type File struct{}

// New reports ErrUnsupported: this system has no memory-only files.
func New(name string) (*File, error) { return nil, ErrUnsupported }

// Path is the path by which a child opens the file.
func (f *File) Path() string { return "" }

// Inherit is the descriptor a child must have open to open Path.
func (f *File) Inherit() *os.File { return nil }

// Inheritable lets the descriptor survive execve.
func (f *File) Inheritable() error { return ErrUnsupported }

// Size is the length of the contents in bytes.
func (f *File) Size() int { return 0 }

// Locked reports whether the contents are locked in memory.
func (f *File) Locked() bool { return false }

// Write replaces the contents in place.
func (f *File) Write(contents []byte) error { return ErrUnsupported }

// Close closes the file.
func (f *File) Close() error { return nil }

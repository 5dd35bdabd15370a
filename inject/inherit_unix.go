//go:build unix

package inject

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// withInherited lays out a child's descriptors: files at 0, 1, 2, ... as
// the supervisor chose them, then each of inherit at its own number, which
// its path names (see memfile). The numbers in between stay as a child
// would have them without inherit: a descriptor that secretrun itself
// inherited without close-on-exec (a shell's process substitution, socket
// activation) reaches the child at its number; the others are closed, as
// close-on-exec would have closed them.
func withInherited(files []*os.File, inherit []*os.File) []*os.File {
	if len(inherit) == 0 {
		return files
	}
	top := 0
	for _, f := range inherit {
		top = max(top, int(f.Fd()))
	}
	if top < len(files) {
		return files
	}
	out := make([]*os.File, top+1)
	copy(out, files)
	for fd := len(files); fd < top; fd++ {
		out[fd] = passedThrough(fd)
	}
	for _, f := range inherit {
		if fd := int(f.Fd()); fd >= len(files) {
			out[fd] = f
		}
	}
	return out
}

var passThrough struct {
	sync.Mutex
	files map[int]*os.File
}

// passedThrough is fd as an *os.File when secretrun holds it open without
// close-on-exec, and nil otherwise. The files are kept for good: an
// *os.File closes its descriptor when it is collected, and these belong to
// secretrun's whole life.
func passedThrough(fd int) *os.File {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC != 0 {
		return nil
	}
	passThrough.Lock()
	defer passThrough.Unlock()
	if passThrough.files == nil {
		passThrough.files = map[int]*os.File{}
	}
	f, ok := passThrough.files[fd]
	if !ok {
		f = os.NewFile(uintptr(fd), "inherited")
		passThrough.files[fd] = f
	}
	return f
}

// inherited lists the descriptors the next child inherits.
func (s *Supervisor) inherited() []*os.File {
	if s.Inherit == nil {
		return nil
	}
	return s.Inherit()
}

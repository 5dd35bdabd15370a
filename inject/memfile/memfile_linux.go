package memfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// File is one memory-only file: a memfd that secretrun writes through a
// descriptor of its own, and a read-only descriptor at the same number in
// secretrun and in the child, which the child opens by Path.
type File struct {
	mu sync.Mutex
	// rw is secretrun's own descriptor, the only writable one; it is
	// close-on-exec, so no child ever has it.
	rw int
	// child is the read-only descriptor the child inherits. It is
	// close-on-exec in secretrun too: a child gets it only when it is
	// handed over (Inherit, or Exec after Inheritable), so the other
	// programs secretrun may start (an exec provider's) never see it.
	child *os.File
	path  string
	// mapped is a read-only mapping of the contents, locked in memory so
	// they are not swapped out.
	mapped []byte
	locked bool
	size   int
}

// New makes an empty memory-only file. name shows in /proc/PID/fd links
// (memfd:NAME) and should say what the file is for, never what it holds.
//
// The file is created with close-on-exec and sealing allowed, marked not
// executable and sealed against exec where the kernel can (Linux 6.3+),
// given mode 0400 so tools that check a key file's permissions (ssh, libpq)
// accept it, and sealed against further seals, so that nobody holding it
// can freeze it and stop a rotation from rewriting it.
func New(name string) (*File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 6.3 know no MFD_NOEXEC_SEAL; the mode below
		// still leaves no execute bit.
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := &File{rw: fd}
	if err := f.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return f, nil
}

func (f *File) setup() error {
	if err := unix.Fchmod(f.rw, 0o400); err != nil {
		return fmt.Errorf("chmod memfd: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(f.rw), unix.F_ADD_SEALS, unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("seal memfd: %w", err)
	}
	// Opening the memfd again through /proc gives a descriptor of its own
	// that can only read: the child can neither write the secret nor add
	// seals (which needs a writable descriptor).
	ro, err := unix.Open("/proc/self/fd/"+strconv.Itoa(f.rw), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open memfd read-only (memory-only files need /proc mounted, as the child opens them through /proc/self/fd): %w", err)
	}
	high, err := unix.FcntlInt(uintptr(ro), unix.F_DUPFD_CLOEXEC, FirstFD)
	unix.Close(ro)
	if err != nil {
		return fmt.Errorf("move memfd to descriptor %d or above: %w", FirstFD, err)
	}
	f.child = os.NewFile(uintptr(high), "memfd")
	f.path = pathOf(high)
	return nil
}

// pathOf is the path that opens descriptor fd: /dev/fd/N where /dev/fd
// exists, as in every container runtime and distribution, and
// /proc/self/fd/N otherwise.
func pathOf(fd int) string {
	dev := "/dev/fd/" + strconv.Itoa(fd)
	if _, err := os.Stat(dev); err == nil {
		return dev
	}
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// Path is the path by which a process that inherited the file opens it.
// It names a descriptor number, so it means the same in secretrun and in
// every child that inherits the file.
func (f *File) Path() string { return f.path }

// Inherit is the descriptor the child must have open at the same number,
// Fd(), to open Path: a supervisor passes it to each child it starts.
func (f *File) Inherit() *os.File { return f.child }

// Inheritable lets the child descriptor survive execve, for secretrun
// replacing itself with the child. Call it only just before that exec.
func (f *File) Inheritable() error {
	_, err := unix.FcntlInt(f.child.Fd(), unix.F_SETFD, 0)
	return err
}

// Size is the length of the contents in bytes.
func (f *File) Size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// Locked reports whether the contents are locked in memory, safe from
// swap; locking fails when RLIMIT_MEMLOCK is too small for them.
func (f *File) Locked() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.locked || f.size == 0
}

// Write replaces the contents in place: the same file, the same path, so a
// running child that opens it again reads the new contents. When Write
// returns they are complete. A reader that reads during the write may see
// a mix of old and new; it never sees an empty file while the new contents
// are not empty. Errors never contain the contents.
func (f *File) Write(contents []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unmap()
	for off := 0; off < len(contents); {
		n, err := unix.Pwrite(f.rw, contents[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write memfd: %w", err)
		}
		off += n
	}
	if err := unix.Ftruncate(f.rw, int64(len(contents))); err != nil {
		return fmt.Errorf("truncate memfd: %w", err)
	}
	f.size = len(contents)
	f.lock()
	return nil
}

// lock maps the contents and locks the mapping: pages of a shared memory
// file that a locked mapping covers stay in memory. A failure leaves them
// swappable, which Locked reports; it stops nothing.
func (f *File) lock() {
	f.locked = false
	if f.size == 0 {
		return
	}
	m, err := unix.Mmap(f.rw, 0, f.size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return
	}
	f.mapped = m
	f.locked = unix.Mlock(m) == nil
}

func (f *File) unmap() {
	if f.mapped != nil {
		_ = unix.Munmap(f.mapped)
		f.mapped = nil
	}
}

// Close closes secretrun's descriptors. A child that inherited the file
// keeps it, with its contents, until it closes it or exits.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unmap()
	err := unix.Close(f.rw)
	if cerr := f.child.Close(); err == nil {
		err = cerr
	}
	return err
}

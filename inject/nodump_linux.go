package inject

import "golang.org/x/sys/unix"

// ProtectMemory marks secretrun non-dumpable while it holds secrets: no core
// dump, and other processes of the same user cannot ptrace it or read its
// memory through /proc. The child, started by execve, is not affected.
func ProtectMemory() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

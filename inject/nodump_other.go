//go:build !linux

package inject

// ProtectMemory does nothing where there is no prctl(PR_SET_DUMPABLE).
func ProtectMemory() error { return nil }

//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package inject

import "golang.org/x/sys/unix"

const ioctlGetTermios = unix.TIOCGETA

//go:build unix

package serve

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/secretrun/secretrun/internal/environ"
)

// ShimArgs is how to start args (COMMAND ARGS...) through the shim: the
// path of secretrun's own executable and the argv to give it, argv[0]
// being secretrun's own argv[0] (so ps shows what it is, and a test binary
// that starts itself dispatches as usual). The child is started with the
// listeners' sockets at 3, 4, ... and Env(ls) in its environment; the
// shim adds LISTEN_PID, its own PID, which stays the PID of COMMAND, and
// execs COMMAND. Go cannot set a variable between fork and exec, which is
// why the shim exists.
func ShimArgs(args []string) (path string, argv []string, err error) {
	if len(args) == 0 {
		return "", nil, errors.New("shim: no command")
	}
	path, err = executable()
	if err != nil {
		return "", nil, fmt.Errorf("shim: find secretrun's own executable: %w", err)
	}
	argv = make([]string, 0, len(args)+3)
	argv = append(argv, os.Args[0], ShimArg, "--")
	return path, append(argv, args...), nil
}

// executable is secretrun's own program. On Linux /proc/self/exe, exec'd
// by the forked child, is still the running binary when a package upgrade
// has replaced or removed the file on disk.
func executable() (string, error) {
	if runtime.GOOS == "linux" {
		if _, err := os.Stat("/proc/self/exe"); err == nil {
			return "/proc/self/exe", nil
		}
	}
	return os.Executable()
}

// RunShim is the shim itself, called by main first thing when os.Args[1]
// is ShimArg, with the arguments after it ("--", COMMAND, ARGS...). When
// LISTEN_FDS is set it sets LISTEN_PID to its own PID and makes sure the
// sockets at 3 ... 2+LISTEN_FDS are not close-on-exec; then it execs
// COMMAND, looked up in the PATH of its environment, which is the child's.
// It returns only on failure, after one `secretrun: ...` line on stderr,
// with the exit status a shell would give: 127 when COMMAND is not found,
// 126 when it cannot be executed (and for a malformed invocation).
func RunShim(args []string, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "--" {
		fmt.Fprintf(stderr, "secretrun: %s is for secretrun's own use: %s -- COMMAND [ARGS...]\n", ShimArg, ShimArg)
		return 126
	}
	argv := args[1:]
	env := os.Environ()
	if fds, ok := environ.Lookup(env, "LISTEN_FDS"); ok {
		n, err := strconv.Atoi(fds)
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "secretrun: LISTEN_FDS=%q is not a count of descriptors\n", fds)
			return 126
		}
		for fd := 3; fd < 3+n; fd++ {
			flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err == nil {
				_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags&^unix.FD_CLOEXEC)
			}
			if err != nil {
				fmt.Fprintf(stderr, "secretrun: LISTEN_FDS=%d, but descriptor %d: %v\n", n, fd, err)
				return 126
			}
		}
		env = setenv(env, "LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	path, err := environ.LookPath(argv[0], env)
	if err == nil {
		err = syscall.Exec(path, argv, env)
	}
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
		fmt.Fprintf(stderr, "secretrun: %s: command not found\n", argv[0])
		return 127
	}
	fmt.Fprintf(stderr, "secretrun: %s: cannot execute: %v\n", argv[0], err)
	return 126
}

// setenv replaces every name= in env with name=value.
func setenv(env []string, name, value string) []string {
	out := env[:0:0]
	prefix := name + "="
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return append(out, prefix+value)
}

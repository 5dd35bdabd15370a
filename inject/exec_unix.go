//go:build unix

package inject

import (
	"errors"
	"os"
	"syscall"

	"github.com/secretrun/secretrun/internal/environ"
)

// CanExec reports whether secretrun can replace itself with the child.
const CanExec = true

// Exec replaces secretrun with the child, so that it costs nothing once the
// child runs: same PID, signals and exit status go straight to the child. It
// returns only when the command cannot be started.
func Exec(cmd Command) error {
	if len(cmd.Args) == 0 {
		return ErrNoCommand
	}
	path, err := lookPath(cmd.Args[0], cmd.Env)
	if err != nil {
		return err
	}
	err = syscall.Exec(path, cmd.Args, cmd.Env)
	return startError(cmd.Args[0], err)
}

// lookPath finds name as execvp(3) would, in the PATH of the child's
// environment rather than secretrun's, since that is the PATH the child
// sees.
func lookPath(name string, env []string) (string, error) {
	path, err := environ.LookPath(name, env)
	return path, startError(name, err)
}

func startError(name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
		return &StartError{Name: name, NotFound: true, Err: err}
	}
	return &StartError{Name: name, Err: err}
}

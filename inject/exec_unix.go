//go:build unix

package inject

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	if strings.Contains(name, "/") {
		return name, checkExecutable(name, name)
	}
	path, ok := environ.Lookup(env, "PATH")
	if !ok {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	var denied error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, name)
		err := checkExecutable(name, candidate)
		if err == nil {
			return candidate, nil
		}
		var se *StartError
		if errors.As(err, &se) && !se.NotFound && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", &StartError{Name: name, NotFound: true, Err: os.ErrNotExist}
}

func checkExecutable(name, path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return startError(name, err)
	case fi.IsDir():
		return &StartError{Name: name, Err: syscall.EISDIR}
	case fi.Mode()&0o111 == 0:
		return &StartError{Name: name, Err: syscall.EACCES}
	}
	return nil
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

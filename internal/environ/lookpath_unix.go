//go:build unix

package environ

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// defaultPath is where a name is looked for when env has no PATH, as
// execvp(3) does.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// LookPath finds name as execvp(3) would, in the PATH of env rather than
// the caller's, since that is the PATH the program will see: a name with
// a slash is taken as it is; otherwise the first executable file in PATH
// wins, and when none is, a file found but not executable is reported
// over "not found". Its errors are errnos: ENOENT (or ENOTDIR) when
// nothing was found, EACCES, EISDIR or the stat's own otherwise.
func LookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, checkExecutable(name)
	}
	path, ok := Lookup(env, "PATH")
	if !ok {
		path = defaultPath
	}
	var denied error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, name)
		err := checkExecutable(candidate)
		if err == nil {
			return candidate, nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTDIR) && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", syscall.ENOENT
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	case fi.IsDir():
		return syscall.EISDIR
	case fi.Mode()&0o111 == 0:
		return syscall.EACCES
	}
	return nil
}

//go:build !windows

package exec

import (
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// prepare puts a program that does not use the terminal in a process group
// of its own, so that stopping it stops whatever it started too: `pass`
// runs gpg, `op` may run helpers. An interactive program stays in
// secretrun's group, the terminal's foreground, or reading the terminal
// would stop it (SIGTTIN).
func prepare(cmd *osexec.Cmd, interactive bool) {
	if interactive {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// openTerminal opens the controlling terminal, if there is one.
func openTerminal() (*terminal, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &terminal{in: f, out: f}, nil
}

var errNotInPath = errors.New("not found in PATH")

// lookPath finds a program as a shell would, but in the PATH of the
// provider's environment rather than the process's own. Relative PATH
// entries are skipped, as os/exec refuses them (exec.ErrDot): a program
// must not be found through the working directory by accident.
func lookPath(file, path string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errNotInPath
}

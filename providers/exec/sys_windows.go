package exec

import (
	"os"
	osexec "os/exec"
)

// prepare leaves the defaults: a timeout kills the program itself, not
// what it started, as Windows has no process groups to signal.
func prepare(cmd *osexec.Cmd, interactive bool) {}

// openTerminal opens the console, which Windows gives as two handles.
func openTerminal() (*terminal, error) {
	in, err := os.OpenFile("CONIN$", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	out, err := os.OpenFile("CONOUT$", os.O_RDWR, 0)
	if err != nil {
		in.Close()
		return nil, err
	}
	return &terminal{in: in, out: out}, nil
}

// lookPath leaves the search to os/exec, which knows PATHEXT; it searches
// the process's own PATH.
func lookPath(file, path string) (string, error) {
	return osexec.LookPath(file)
}

//go:build windows

package inject

import (
	"os"
	"os/exec"
	"os/signal"
)

// CanExec reports whether secretrun can replace itself with the child:
// Windows has no exec(2).
const CanExec = false

// Exec is not possible on Windows; callers supervise instead.
func Exec(cmd Command) error {
	_, err := (&Supervisor{Command: cmd}).Run()
	return err
}

// Run starts the child and waits for it, returning its exit code. Ctrl-C
// reaches every process attached to the console, the child included, so
// secretrun only ignores it and keeps waiting for the child's own exit.
// Windows cannot deliver signals other than kill, so a restart or
// on_change: exit kills the child and on_change: signal fails.
func (s *Supervisor) Run() (int, error) {
	if len(s.Command.Args) == 0 {
		return 0, ErrNoCommand
	}
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	defer signal.Stop(interrupts)

	l := loop{
		launch:      s.start,
		sigs:        interrupts,
		forward:     func(os.Signal) bool { return false },
		terminating: func(os.Signal) bool { return false },
	}
	return s.supervise(l)
}

func (s *Supervisor) start(env []string) (process, error) {
	path, err := exec.LookPath(s.Command.Args[0])
	if err != nil {
		return nil, &StartError{Name: s.Command.Args[0], NotFound: true, Err: err}
	}
	stdin := s.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	files, parentEnds, output, err := startPipes(s.Stdout, s.Stderr)
	if err != nil {
		return nil, err
	}
	proc, err := os.StartProcess(path, s.Command.Args, &os.ProcAttr{Env: env, Files: append([]*os.File{stdin}, files...)})
	for _, f := range parentEnds {
		f.Close()
	}
	if err != nil {
		return nil, &StartError{Name: s.Command.Args[0], Err: err}
	}
	c := &child{proc: proc, id: proc.Pid, done: make(chan status, 1), output: output}
	go func() {
		ps, err := proc.Wait()
		if err != nil {
			c.done <- 1
			return
		}
		c.done <- status(ps.ExitCode())
	}()
	return c, nil
}

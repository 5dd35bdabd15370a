package inject

import (
	"os"
	"time"
)

// child is one running child process. Exactly one goroutine waits on it:
// its own waiter, or the reaper when secretrun is PID 1.
type child struct {
	proc *os.Process
	// id is the PID, kept because the os package forgets it once the
	// process has been waited for.
	id     int
	done   chan status
	output chan struct{}
}

func (c *child) pid() int                   { return c.id }
func (c *child) exited() <-chan status      { return c.done }
func (c *child) kill() error                { return c.proc.Kill() }
func (c *child) signal(sig os.Signal) error { return c.proc.Signal(sig) }

// finish waits for the child's output to be copied, for at most d after it
// exited: a grandchild that inherited the pipe may hold it open for ever.
func (c *child) finish(d time.Duration) {
	if d <= 0 {
		d = 2 * time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.output:
	case <-t.C:
	}
	_ = c.proc.Release()
}

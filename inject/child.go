package inject

import (
	"errors"
	"io"
	"os"
	"time"
)

// Command is the program to run as the child.
type Command struct {
	// Args is the argument vector; Args[0] is looked up in the PATH of Env.
	Args []string
	// Env is the child's whole environment.
	Env []string
}

// StartError means the command could not be started: it was not found
// (exit status 127) or could not be executed (126).
type StartError struct {
	Name     string
	NotFound bool
	Err      error
}

func (e *StartError) Error() string {
	if e.NotFound {
		return e.Name + ": command not found"
	}
	return e.Name + ": cannot execute: " + e.Err.Error()
}

func (e *StartError) Unwrap() error { return e.Err }

// Supervisor runs the child and stays its parent: it forwards signals,
// passes the exit status through and, as PID 1, reaps orphans.
type Supervisor struct {
	Command Command
	// Stdin, Stdout and Stderr are the child's standard streams. An
	// *os.File is handed to the child as it is, so a terminal stays a
	// terminal; any other writer is fed through a pipe (output masking).
	Stdin          *os.File
	Stdout, Stderr io.Writer
	// Reap makes the supervisor reap every process that exits, not only
	// the child: PID 1 inherits orphans, and nobody else will.
	Reap bool
	// StopSignal and StopTimeout stop the child gracefully: the signal,
	// then SIGKILL after the timeout.
	StopSignal  os.Signal
	StopTimeout time.Duration
	// OutputDrain bounds how long output is still copied after the child
	// exits, when a grandchild keeps its pipe open.
	OutputDrain time.Duration
}

// status is how a process ended, as an exit status in the shell's
// convention: its own status, or 128+N when killed by signal N.
type status int

// ErrNoCommand is returned when there is nothing to run.
var ErrNoCommand = errors.New("no command given; put it after --, as in: secretrun -- npm start")

// startPipes gives each writer that is not a file a pipe and a goroutine
// copying from it. It returns the files for the child, the parent's write
// ends to close once the child has them, and a channel that is closed when
// every copy has finished.
func startPipes(writers ...io.Writer) (files []*os.File, parentEnds []*os.File, done chan struct{}, err error) {
	done = make(chan struct{})
	copies := 0
	finished := make(chan struct{}, len(writers))
	for _, w := range writers {
		if f, ok := w.(*os.File); ok {
			files = append(files, f)
			continue
		}
		if w == nil {
			w = io.Discard
		}
		r, pw, perr := os.Pipe()
		if perr != nil {
			for _, f := range parentEnds {
				f.Close()
			}
			return nil, nil, nil, perr
		}
		files = append(files, pw)
		parentEnds = append(parentEnds, pw)
		copies++
		go func() {
			defer func() { finished <- struct{}{} }()
			defer r.Close()
			_, _ = io.Copy(w, r)
			if c, ok := w.(io.Closer); ok {
				_ = c.Close()
			}
		}()
	}
	go func() {
		for range copies {
			<-finished
		}
		close(done)
	}()
	return files, parentEnds, done, nil
}

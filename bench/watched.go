//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// generationChild prints the non-secret GENERATION field of its secrets
// and waits, so that a restart with new values shows on its stdout without
// any secret value being printed.
var generationChild = []string{"/bin/sh", "-c", `echo "generation=$GENERATION"; exec sleep 3600`}

// line is one line that a watched secretrun, or its child, wrote, with the
// time it was read.
type line struct {
	stderr bool
	text   string
	at     time.Time
}

// watched is the built secretrun running `run --watch` with a child, as a
// user runs it. Its stdout is the child's; its stderr is secretrun's own
// events (outages, recoveries, restarts).
type watched struct {
	cmd    *exec.Cmd
	lines  chan line
	stderr strings.Builder // every stderr line so far, for failure messages
	// logf shows secretrun's own lines in the benchmark's progress log.
	logf func(format string, args ...any)
}

// startWatched starts `secretrun run --watch -c config -- child...`.
func (h *harness) startWatched(ctx context.Context, config string, env []string, child ...string) (*watched, error) {
	w := &watched{lines: make(chan line, 256), logf: h.logf}
	w.cmd = exec.CommandContext(ctx, h.bin, append([]string{"run", "--watch", "-c", config, "--"}, child...)...)
	w.cmd.Env = env
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := w.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{}, 2)
	read := func(r io.Reader, isErr bool) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			w.lines <- line{stderr: isErr, text: sc.Text(), at: time.Now()}
		}
		done <- struct{}{}
	}
	go read(stdout, false)
	go read(stderr, true)
	go func() {
		<-done
		<-done
		close(w.lines)
	}()
	return w, nil
}

// stop ends secretrun as a user's Ctrl-C would, and waits for it.
func (w *watched) stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	go func() {
		for range w.lines {
		}
	}()
	_ = w.cmd.Wait()
}

// waitFor reads lines until one satisfies match, and returns it. Every
// line read on the way goes to seen, when not nil, so that a caller can
// notice what it did not expect (a restart in the middle of an outage).
func (w *watched) waitFor(limit time.Duration, what string, match func(line) bool, seen func(line)) (line, error) {
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				return line{}, fmt.Errorf("secretrun exited before %s: %s", what, w.stderr.String())
			}
			w.record(l)
			if seen != nil {
				seen(l)
			}
			if match(l) {
				return l, nil
			}
		case <-timeout.C:
			return line{}, fmt.Errorf("no %s within %s: %s", what, limit, w.stderr.String())
		}
	}
}

// waitGeneration waits for the child to print generation gen.
func (w *watched) waitGeneration(gen int, limit time.Duration) (line, error) {
	want := fmt.Sprintf("generation=%d", gen)
	return w.waitFor(limit, "a child with "+want, func(l line) bool { return !l.stderr && l.text == want }, nil)
}

// drain reads what is already written, without waiting, so that old lines
// do not count for what comes next.
func (w *watched) drain(seen func(line)) {
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				return
			}
			w.record(l)
			if seen != nil {
				seen(l)
			}
		default:
			return
		}
	}
}

func (w *watched) record(l line) {
	if l.stderr {
		w.stderr.WriteString(l.text + "\n")
		w.logf("  %s", l.text)
	}
}

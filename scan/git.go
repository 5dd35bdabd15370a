package scan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// TopLevel returns the top directory of the git work tree that holds dir,
// or an error when dir is not in one.
func TopLevel(ctx context.Context, dir string) (string, error) {
	out, err := gitOutput(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// blob is one blob to search and where it was first seen.
type blob struct {
	id     string
	path   string
	commit string
	staged bool
}

// Staged searches every blob in the index of the repository at repo, as a
// pre-commit hook must: what is about to be committed, whatever the work
// tree holds. keep, when set, chooses the paths (relative to the top).
func (s *Scanner) Staged(ctx context.Context, repo string, keep func(path string) bool) ([]Finding, Stats, error) {
	if s.Empty() {
		return nil, Stats{}, nil
	}
	out, err := gitOutput(ctx, repo, "ls-files", "--stage", "-z")
	if err != nil {
		return nil, Stats{}, err
	}
	var blobs []blob
	for _, entry := range bytes.Split(out, []byte{0}) {
		// MODE SHA STAGE\tPATH
		meta, path, ok := strings.Cut(string(entry), "\t")
		fields := strings.Fields(meta)
		if !ok || len(fields) != 3 || fields[0] == "160000" || (keep != nil && !keep(path)) {
			continue
		}
		blobs = append(blobs, blob{id: fields[1], path: path, staged: true})
	}
	return s.blobs(ctx, repo, func(send func(blob) bool) error {
		for _, b := range blobs {
			if !send(b) {
				break
			}
		}
		return nil
	}, 1)
}

// History searches every blob reachable from any ref of the repository at
// repo, each once however many commits and refs reach it, and names the
// first commit (parents before children) that brought it in, and the path
// it had there. keep, when set, chooses the paths.
func (s *Scanner) History(ctx context.Context, repo string, keep func(path string) bool) ([]Finding, Stats, error) {
	if s.Empty() {
		return nil, Stats{}, nil
	}
	if _, err := gitOutput(ctx, repo, "rev-parse", "--git-dir"); err != nil {
		return nil, Stats{}, err
	}
	// The raw diff of every commit against each of its parents lists each
	// blob where it appears; -m includes what a merge brought itself.
	log := gitCommand(ctx, repo, "log", "--all", "--topo-order", "--reverse", "-m", "--root",
		"--raw", "--no-abbrev", "--no-renames", "-z", "--format=%x01%H")
	stdout, err := log.StdoutPipe()
	if err != nil {
		return nil, Stats{}, err
	}
	var stderr bytes.Buffer
	log.Stderr = &stderr
	if err := log.Start(); err != nil {
		return nil, Stats{}, fmt.Errorf("git log: %w", err)
	}
	workers := s.workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	fds, stats, err := s.blobs(ctx, repo, func(send func(blob) bool) error {
		defer func() { _, _ = io.Copy(io.Discard, stdout) }()
		seen := map[string]bool{}
		r := bufio.NewReaderSize(stdout, 64<<10)
		var commit string
		for {
			tok, err := r.ReadString(0)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			tok = strings.TrimLeft(strings.TrimSuffix(tok, "\x00"), "\n")
			switch {
			case strings.HasPrefix(tok, "\x01"):
				commit = tok[1:]
			case strings.HasPrefix(tok, ":"):
				path, err := r.ReadString(0)
				if err != nil {
					return fmt.Errorf("git log: a change without a path")
				}
				path = strings.TrimSuffix(path, "\x00")
				// :OLDMODE NEWMODE OLDSHA NEWSHA STATUS
				f := strings.Fields(tok[1:])
				if len(f) != 5 || f[4] == "D" || !strings.HasPrefix(f[1], "10") && f[1] != "120000" || seen[f[3]] {
					continue
				}
				if keep != nil && !keep(path) {
					continue
				}
				seen[f[3]] = true
				if !send(blob{id: f[3], path: path, commit: commit}) {
					return nil
				}
			}
		}
	}, workers)
	if werr := log.Wait(); werr != nil && err == nil && ctx.Err() == nil {
		err = fmt.Errorf("git log: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return fds, stats, err
}

// blobs searches the blobs list sends, through workers `git cat-file
// --batch` processes, one of which reads each blob.
func (s *Scanner) blobs(ctx context.Context, repo string, list func(send func(blob) bool) error, workers int) ([]Finding, Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		out      []Finding
		stats    Stats
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	queues := make([]chan blob, workers)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan blob, 256)
		wg.Go(func() {
			fds, st, err := s.catFile(ctx, repo, queues[i])
			if err != nil {
				fail(err)
			}
			mu.Lock()
			out = append(out, fds...)
			stats.Files += st.Files
			stats.Bytes += st.Bytes
			mu.Unlock()
		})
	}
	next := 0
	err := list(func(b blob) bool {
		select {
		case queues[next] <- b:
			next = (next + 1) % workers
			return true
		case <-ctx.Done():
			return false
		}
	})
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	if err == nil {
		err = firstErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, stats, err
	}
	Sort(out)
	return out, stats, nil
}

// catFile runs one `git cat-file --batch` for the blobs of queue: one
// goroutine writes their names, this one reads and searches their
// contents, in the same order.
func (s *Scanner) catFile(ctx context.Context, repo string, queue <-chan blob) ([]Finding, Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := gitCommand(ctx, repo, "cat-file", "--batch")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, Stats{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, Stats{}, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, Stats{}, fmt.Errorf("git cat-file: %w", err)
	}
	// Requests in flight, in the order cat-file answers them.
	inflight := make(chan blob, 1024)
	go func() {
		defer close(inflight)
		defer stdin.Close()
		w := bufio.NewWriterSize(stdin, 16<<10)
		for {
			var b blob
			select {
			case next, ok := <-queue:
				if !ok {
					_ = w.Flush()
					return
				}
				b = next
			case <-ctx.Done():
				return
			}
			if _, err := w.WriteString(b.id + "\n"); err != nil {
				return
			}
			inflight <- b
			// Flushed when nothing else is waiting, so cat-file is never
			// idle while names sit in the buffer.
			if len(queue) == 0 {
				if w.Flush() != nil {
					return
				}
			}
		}
	}()

	var (
		out   []Finding
		stats Stats
		buf   = make([]byte, chunkSize+s.finder.MaxLen()-1)
	)
	r := bufio.NewReaderSize(stdout, 64<<10)
	readErr := func() error {
		for b := range inflight {
			header, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("git cat-file: %w", err)
			}
			// SHA TYPE SIZE, or SHA missing
			f := strings.Fields(header)
			if len(f) != 3 {
				return fmt.Errorf("git cat-file: object %s: %s", b.id, strings.TrimSpace(header))
			}
			size, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				return fmt.Errorf("git cat-file: %q: %w", strings.TrimSpace(header), err)
			}
			body := io.LimitReader(r, size)
			if f[1] == "blob" {
				fds, err := s.searchFile(body, buf, Finding{Commit: b.commit, Path: b.path, Staged: b.staged})
				if err != nil {
					return fmt.Errorf("git cat-file: %w", err)
				}
				out = append(out, fds...)
				stats.Files++
				stats.Bytes += size
			}
			if _, err := io.Copy(io.Discard, body); err != nil {
				return fmt.Errorf("git cat-file: %w", err)
			}
			if _, err := r.Discard(1); err != nil { // the newline after the contents
				return fmt.Errorf("git cat-file: %w", err)
			}
		}
		return nil
	}()
	if readErr != nil {
		cancel()
		for range inflight {
		}
		_ = cmd.Wait()
		return nil, stats, readErr
	}
	if err := cmd.Wait(); err != nil && ctx.Err() == nil {
		return nil, stats, fmt.Errorf("git cat-file: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, stats, nil
}

func gitCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	// A scan reads the repository as it is; no pager, no prompts, no
	// replace refs that would show other objects.
	cmd.Env = append(cmd.Environ(), "GIT_PAGER=cat", "GIT_TERMINAL_PROMPT=0", "GIT_NO_REPLACE_OBJECTS=1")
	return cmd
}

func gitOutput(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := gitCommand(ctx, dir, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("git %s: %s", args[0], msg)
	}
	return out, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

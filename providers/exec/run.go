package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/internal/environ"
	"github.com/secretrun/secretrun/providers"
)

const (
	// maxStderr is how much of a program's stderr is kept for messages.
	maxStderr = 64 << 10
	// quoteStderr is how much of the end of stderr a message quotes.
	quoteStderr = 1000
	// waitDelay bounds how long a run waits, after the program exited or
	// was killed, for processes it left behind to close stdout and stderr.
	waitDelay = time.Second
)

var (
	errTimeout = errors.New("timed out")
	errTooMuch = fmt.Errorf("printed more than %d KiB on stdout", MaxOutput>>10)
)

// terminal is where an interactive program reads answers and prompts.
// Both are files, which the program gets as they are: through a pipe it
// would not see a terminal, and os/exec would wait on a copy from it.
type terminal struct {
	in, out *os.File
}

func (t *terminal) Close() {
	t.in.Close()
	if t.out != t.in {
		t.out.Close()
	}
}

// run is the outcome of running one command line.
type run struct {
	stdout []byte
	stderr []byte
	// stderrCut is set when the program wrote more stderr than was kept.
	stderrCut bool
	// onTerminal is set when stderr went to the terminal, not to stderr.
	onTerminal bool
	err        error
	exitCode   int
}

// Fetch runs each distinct command line once, up to max_concurrency at a
// time, and reads every source's fields from its output.
func (p *provider) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("exec %q: %w", p.name, err)
	}
	path, err := p.lookPath()
	if err != nil {
		return nil, err
	}

	var unique []ref
	index := map[string]int{}
	for _, src := range sources {
		r := src.Ref.(ref)
		if _, ok := index[r.key()]; !ok {
			index[r.key()] = len(unique)
			unique = append(unique, r)
		}
	}
	runs := make([]run, len(unique))
	var wg sync.WaitGroup
	sem := make(chan struct{}, p.concurrency)
	for i, r := range unique {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				runs[i].err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			runs[i] = p.run(ctx, path, r)
		}()
	}
	wg.Wait()
	defer func() {
		// The output held the values in clear: do not leave it for the
		// garbage collector to keep around.
		for i := range runs {
			clear(runs[i].stdout)
			clear(runs[i].stderr)
		}
	}()

	results := make([]providers.Result, len(sources))
	var values []string
	for i, src := range sources {
		ru := &runs[index[src.Ref.(ref).key()]]
		if ru.err != nil {
			continue
		}
		fields, err := parse(src.Ref.(ref).format, ru.stdout)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].Fields = fields
		for _, f := range fields {
			values = append(values, f.Value.Reveal())
		}
	}

	m := p.masker(values, runs, results)
	for i, src := range sources {
		r := src.Ref.(ref)
		ru := &runs[index[r.key()]]
		switch {
		case ru.err != nil:
			results[i].Err = p.runError(r, ru, m)
		case results[i].Err != nil:
			results[i].Err = fmt.Errorf("exec %q: %s: %w%s", p.name, r, results[i].Err, p.quote(ru, m))
		}
	}
	return results, nil
}

// masker masks every value read now or by the last Fetch, and whatever
// the programs printed on stdout, read in any format: a program that fails
// may have printed values before it did. It is nil when nothing failed.
func (p *provider) masker(values []string, runs []run, results []providers.Result) *masker {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := p.seen
	p.seen = values
	failed := false
	for i := range runs {
		failed = failed || runs[i].err != nil
	}
	for i := range results {
		failed = failed || results[i].Err != nil
	}
	if !failed {
		return nil
	}
	all := append(append([]string(nil), values...), seen...)
	for i := range runs {
		all = append(all, anyValues(runs[i].stdout)...)
	}
	return newMasker(all)
}

func (p *provider) runError(r ref, ru *run, m *masker) error {
	var reason error
	var exit *osexec.ExitError
	switch {
	case errors.Is(ru.err, errTimeout):
		hint := ""
		if !p.interactive {
			hint = "; if it waits for input on the terminal, set `interactive: true`"
		}
		reason = fmt.Errorf("%w after %s%s", errTimeout, p.timeout, hint)
	case errors.Is(ru.err, errTooMuch):
		reason = errTooMuch
	case errors.As(ru.err, &exit) && p.isNotFound(ru):
		reason = fmt.Errorf("%w (%s)", providers.ErrNotFound, exitReason(exit))
	case errors.As(ru.err, &exit):
		reason = errors.New(exitReason(exit))
	default:
		reason = ru.err
	}
	return fmt.Errorf("exec %q: %s: %w%s", p.name, r, reason, p.quote(ru, m))
}

func exitReason(exit *osexec.ExitError) string {
	if exit.Exited() {
		return fmt.Sprintf("exit status %d", exit.ExitCode())
	}
	// Killed by a signal: the os package's own text names it.
	return exit.ProcessState.String()
}

func (p *provider) isNotFound(ru *run) bool {
	if p.notFoundExit[ru.exitCode] {
		return true
	}
	return p.notFoundErr != nil && p.notFoundErr.Match(ru.stderr)
}

// quote returns the end of the program's stderr for a message, masked, or
// nothing when there is none to show.
func (p *provider) quote(ru *run, m *masker) string {
	if ru.onTerminal {
		return " (its stderr went to the terminal)"
	}
	text := ru.stderr
	if ru.stderrCut {
		// The last kept line may hold part of a value, which masking
		// would not recognise: drop it.
		i := strings.LastIndexByte(string(text), '\n')
		if i < 0 {
			return " (stderr too long to quote)"
		}
		text = text[:i]
	}
	s := strings.TrimSpace(m.mask(string(text)))
	if s == "" {
		return ""
	}
	if len(s) > quoteStderr {
		s = s[len(s)-quoteStderr:]
		for len(s) > 0 && !startsRune(s) {
			s = s[1:]
		}
		s = "…" + s
	}
	return fmt.Sprintf("; stderr: %q", s)
}

func startsRune(s string) bool { return s[0]&0xC0 != 0x80 }

// run runs one command line to completion, the timeout or the output
// limit, whichever comes first.
func (p *provider) run(ctx context.Context, path string, r ref) run {
	ctx, cancel := context.WithTimeoutCause(ctx, p.timeout, errTimeout)
	defer cancel()
	stdout := &boundedBuffer{max: MaxOutput, onFull: func() { cancel() }}
	stderr := &boundedBuffer{max: maxStderr}
	cmd := osexec.CommandContext(ctx, path, r.argv[1:]...)
	cmd.Args[0] = r.argv[0]
	cmd.Env = p.environ()
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay

	var out run
	interactive := false
	if p.interactive {
		if t, err := p.openTTY(); err == nil {
			defer t.Close()
			cmd.Stdin, cmd.Stderr = t.in, t.out
			interactive = true
			out.onTerminal = true
		}
	}
	prepare(cmd, interactive)

	err := cmd.Run()
	out.stdout, out.stderr, out.stderrCut = stdout.buf, stderr.buf, stderr.cut
	var exit *osexec.ExitError
	switch {
	case stdout.cut:
		out.err = errTooMuch
	case errors.Is(context.Cause(ctx), errTimeout):
		out.err = errTimeout
	case ctx.Err() != nil:
		out.err = ctx.Err()
	case errors.Is(err, osexec.ErrWaitDelay) && cmd.ProcessState.Success():
		// The program succeeded but left a process holding its output
		// open; what it printed itself is complete.
	case errors.As(err, &exit):
		out.err, out.exitCode = err, exit.ExitCode()
	case err != nil:
		out.err = fmt.Errorf("run %s: %w", r.argv[0], unwrapPathError(err))
	}
	return out
}

// unwrapPathError drops the path from start errors, which repeat what the
// message already says.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// environ is the environment the program gets: secretrun's own, which
// holds no secret values, since those only ever reach the child.
func (p *provider) environ() []string {
	if p.env.Environ != nil {
		return p.env.Environ()
	}
	// An embedder that gives no whole environment: pass what a program
	// commonly needs to find its binaries, configuration and agents.
	var env []string
	if p.env.Getenv != nil {
		for _, name := range fallbackEnv {
			if v := p.env.Getenv(name); v != "" {
				env = append(env, name+"="+v)
			}
		}
	}
	return env
}

var fallbackEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM",
	"XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR",
	"DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK",
	"GNUPGHOME", "GPG_TTY", "PASSWORD_STORE_DIR",
	"SYSTEMROOT", "COMSPEC", "PATHEXT", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "TEMP", "TMP",
}

func (p *provider) getenv(name string) string {
	if p.env.Environ != nil {
		v, _ := environ.Lookup(p.env.Environ(), name)
		return v
	}
	if p.env.Getenv != nil {
		return p.env.Getenv(name)
	}
	return ""
}

func (p *provider) lookPath() (string, error) {
	name := p.command[0]
	path, err := lookPath(name, p.getenv("PATH"))
	if err != nil {
		return "", fmt.Errorf("exec %q: command %q: %w", p.name, name, err)
	}
	return path, nil
}

// boundedBuffer keeps the first max bytes written to it. Past that it
// either fails the write and calls onFull (stdout: the program is stopped)
// or drops the rest quietly (stderr: the program runs on).
type boundedBuffer struct {
	max    int
	buf    []byte
	cut    bool
	onFull func()
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.max - len(b.buf)
	if len(p) <= room {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	b.buf = append(b.buf, p[:room]...)
	b.cut = true
	if b.onFull != nil {
		b.onFull()
		return room, errTooMuch
	}
	return len(p), nil
}

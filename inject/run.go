package inject

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/secretrun/secretrun/inject/mask"
	"github.com/secretrun/secretrun/inject/startup"
	"github.com/secretrun/secretrun/providers"
)

// Job is one run of a command with its secrets: what `secretrun run`
// does, as a library.
type Job struct {
	// Args is the command; Args[0] is looked up in the child's PATH.
	Args []string
	// Sources and Providers are what to fetch, as the config planned them.
	Sources   []*providers.Source
	Providers map[string]providers.Provider
	// Names are the providers' names for messages, `vault "prod"`, by
	// instance name.
	Names map[string]string
	// Environ is secretrun's own environment, the base of the child's.
	Environ []string
	// PreserveEnv makes variables already in Environ win over secrets.
	PreserveEnv bool
	// Templates are the memory-only files rendered from the secrets
	// (`files:`), beside the fields that sources make files.
	Templates []Template

	Stdin          *os.File
	Stdout, Stderr io.Writer
	// Mask redacts the secrets' values in the child's output.
	Mask bool
	// GitHubActions registers every value with ::add-mask:: first.
	GitHubActions bool
	// PID1 makes secretrun reap orphans, as a container's init must.
	PID1 bool
	// NoExec keeps secretrun the child's parent even when nothing needs
	// supervising (tests, benchmarks).
	NoExec bool

	// Serve hands the children sockets or puts a proxy before them
	// (listen:, proxy:); secretrun then stays their parent.
	Serve *Serve

	// Watch turns rotation on; nil leaves it off.
	Watch *Watch
	// StopSignal and StopTimeout stop the child gracefully for a restart
	// or on_change: exit.
	StopSignal  os.Signal
	StopTimeout time.Duration

	// Log receives secretrun's own events and warnings; nil discards them.
	Log *slog.Logger
	// Events, when set, is told what happens to the secrets and the child,
	// for the audit trail and `secretrun status` (see events.go).
	Events func(Event)

	// rand returns a number in [0, 1) for jitter and splay; tests make it
	// predictable.
	rand func() float64
	// assemble builds the secrets from every source's results on
	// rotation; nil is Assemble.
	assemble func([]providers.Result) (*Secrets, error)
}

// Watch is what `watch:` says about polling and rotation.
type Watch struct {
	// Interval is the time between polls of each provider (30s when zero).
	Interval time.Duration
	OnChange Action
	// Signal is sent with on_change: signal.
	Signal os.Signal
	// Splay delays each action by a random time up to Splay.
	Splay time.Duration
}

// Run fetches the secrets, all or nothing, and runs the command with them.
// When nothing needs supervising it replaces secretrun with the command
// (exec) and returns only if that fails. Otherwise it supervises the child,
// keeps the providers' credentials alive, watches for rotation when asked,
// gives every credential back when the child has exited, and returns the
// status to exit with: the child's, 128+N for signal N, or ExitRotated.
func Run(ctx context.Context, j Job) (int, error) {
	if len(j.Args) == 0 {
		return 0, ErrNoCommand
	}
	log := j.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ProtectMemory(); err != nil {
		log.Warn(fmt.Sprintf("cannot mark secretrun non-dumpable: %v", err))
	}
	closed := false
	closeAll := func() {
		if !closed {
			closed = true
			CloseProviders(j.observedClosers(), j.Names, log)
		}
	}
	defer closeAll()

	if j.Watch != nil || j.PID1 || j.Serve != nil {
		// A supervisor that stays for the child's life: ≈ 3.5 MB less at
		// its peak for ≈ 0.5 ms of page faults.
		startup.ReleaseCode()
	}

	// Ctrl-C while fetching aborts the start; the child does not exist yet.
	fetchCtx, stopInterrupts := interruptible(ctx)
	defer stopInterrupts()
	secrets, err := Resolve(fetchCtx, j.Sources, j.Providers)
	execs := CanExec && !j.NoExec && !j.PID1 && !j.Mask && j.Watch == nil && j.Serve == nil && !holdsLeases(j.Providers)
	if !execs {
		// The supervisor listens for signals itself, to forward them.
		stopInterrupts()
	}
	if err != nil {
		j.emit(Event{Kind: EventFetchFailed, Err: err})
		return 0, err
	}
	environ := func(s *Secrets) []string { return Environ(j.Environ, s.Vars, j.PreserveEnv) }
	files := newMemFiles(log)
	defer files.close()
	if err := j.withFiles(secrets, files, environ); err != nil {
		return 0, err
	}
	// Written before the child exists: it never sees an empty file.
	if err := files.write(secrets); err != nil {
		return 0, err
	}
	cmd := Command{Args: j.Args, Env: environ(secrets)}
	values := revealAll(secrets)
	if j.GitHubActions {
		if err := mask.WriteAddMask(j.Stdout, values); err != nil {
			return 0, fmt.Errorf("register masks with GitHub Actions: %w", err)
		}
	}

	if execs {
		// Still listening for Ctrl-C, which from here to exec (well under
		// a millisecond) is not acted on: exec gives the child the default
		// dispositions, and unregistering first would cost another round
		// with the runtime's signal thread. A run that does not reach exec
		// stops listening on its way out.
		// What the providers hold only for themselves (a login token)
		// is given back now: after exec nobody could.
		closeAll()
		if err := files.inheritable(); err != nil {
			return 0, err
		}
		j.emit(Event{Kind: EventStart, PID: os.Getpid(), Secrets: secrets})
		err := Exec(cmd)
		j.emit(Event{Kind: EventExit, Err: err})
		return 0, err
	}

	sup := &Supervisor{
		Command:     cmd,
		Stdin:       j.Stdin,
		Stdout:      j.Stdout,
		Stderr:      j.Stderr,
		Reap:        j.PID1,
		StopSignal:  j.StopSignal,
		StopTimeout: j.StopTimeout,
		Inherit:     files.inherit,
		Log:         log,
	}
	if j.Serve != nil {
		closeServing, err := sup.serveWith(j.Serve, log)
		if err != nil {
			return 0, err
		}
		// Run returns once every child is gone.
		defer closeServing()
	}
	obs := j.observe(sup, secrets)
	var masks []*rotatingMask
	if j.Mask {
		stdout, stderr := newRotatingMask(j.Stdout, values), newRotatingMask(j.Stderr, values)
		sup.Stdout, sup.Stderr = stdout, stderr
		masks = []*rotatingMask{stdout, stderr}
		warnShortValues(log, secrets, stdout.skipped())
		sup.Terminal = onTerminal(j.Stdout, j.Stderr)
		// Closing writes out what the writers hold back.
		defer stderr.Close()
		defer stdout.Close()
	}

	j.assemble = func(results []providers.Result) (*Secrets, error) {
		s, err := Assemble(j.Sources, results)
		if err == nil {
			err = j.withFiles(s, files, environ)
		}
		return s, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Stopped before the providers are closed, so that no renewal or poll
	// races their Close.
	defer wg.Wait()
	defer cancel()
	j.start(ctx, &wg, sup, secrets, environ, func(s *Secrets) {
		fresh := revealAll(s)
		if j.GitHubActions {
			// New values are registered before the child can print them.
			if err := mask.WriteAddMask(j.Stdout, fresh); err != nil {
				log.Warn(fmt.Sprintf("register masks with GitHub Actions: %v", err))
			}
		}
		for _, m := range masks {
			m.add(fresh)
		}
		// After the masks, so the child cannot print new contents
		// unmasked; before on_change, so a signalled or new child reads
		// them.
		if err := files.write(s); err != nil {
			log.Warn(fmt.Sprintf("rotation: cannot rewrite the memory-only files: %v; the child reads the old contents", err))
		}
		obs.rotated(s)
	}, log)
	status, err := sup.Run()
	obs.exited(status, err)
	return status, err
}

// withFiles finishes an assembly of the secrets for the child: it renders
// the templates, gives each file its path and checks that the child can be
// started with the environment.
func (j *Job) withFiles(s *Secrets, files *memFiles, environ func(*Secrets) []string) error {
	if err := RenderFiles(s, j.Templates); err != nil {
		return err
	}
	if err := files.bind(s); err != nil {
		return err
	}
	return checkLimits(j.Args, environ(s), s.Vars)
}

// start runs what goes on beside the child until ctx ends: a renewer for
// every provider that holds credentials and, with watch on, the watcher,
// whose rotations go to sup as the job's policy says.
func (j *Job) start(ctx context.Context, wg *sync.WaitGroup, sup *Supervisor, secrets *Secrets, environ func(*Secrets) []string, onRotate func(*Secrets), log *slog.Logger) {
	renewers := newRenewers(j.Providers, j.Names, log)
	for name, r := range renewers {
		r.holder = j.observedRenewals(name, r.holder)
	}
	if j.Watch != nil {
		w := newWatcher(j.Sources, j.Providers, j.Names, secrets, environ, j.Watch.Interval, log)
		w.rand = j.rand
		w.assemble = j.assemble
		w.onRead = func(provider string) {
			if r := renewers[provider]; r != nil {
				r.poke()
			}
		}
		for _, r := range renewers {
			r.replace = w.kick
		}
		rotations := make(chan Rotation)
		sup.Rotations = rotations
		sup.Policy = Policy{
			OnChange: j.Watch.OnChange,
			Signal:   j.Watch.Signal,
			Splay:    j.Watch.Splay,
			Interval: j.Watch.Interval,
			OnRotate: onRotate,
			rand:     j.rand,
		}
		wg.Go(func() { w.run(ctx, rotations) })
	}
	for _, r := range renewers {
		wg.Go(func() { r.run(ctx) })
	}
}

// newRenewers prepares a renewer for every provider that holds
// credentials.
func newRenewers(provs map[string]providers.Provider, names map[string]string, log *slog.Logger) map[string]*renewer {
	out := map[string]*renewer{}
	for name, p := range provs {
		if h, ok := p.(providers.Holder); ok {
			out[name] = newRenewer(name, displayName(names, name), h, log, nil)
		}
	}
	return out
}

func displayName(names map[string]string, provider string) string {
	if n, ok := names[provider]; ok {
		return n
	}
	return fmt.Sprintf("%q", provider)
}

// interruptible is ctx, cancelled too by SIGINT or SIGTERM, with the
// function that stops listening for them. Registering with os/signal costs
// ≈ 0.3 ms on the start path — the runtime starts a thread that keeps the
// signal mask and hands it each signal in turn — so it is done beside the
// fetch, not before it: a signal in that moment ends secretrun as it would
// have a moment earlier, before it started listening.
func interruptible(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 1)
	registered := make(chan struct{})
	go func() {
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		close(registered)
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, sync.OnceFunc(func() {
		cancel()
		<-registered
		signal.Stop(sigs)
	})
}

// holdsLeases reports whether the child uses credentials that a provider
// must renew or give back: then secretrun stays the child's parent.
func holdsLeases(provs map[string]providers.Provider) bool {
	for _, p := range provs {
		if h, ok := p.(providers.Holder); ok && h.HoldsLeases() {
			return true
		}
	}
	return false
}

// CloseProviders gives back what every provider holds, all at once, within
// ten seconds.
func CloseProviders(provs map[string]providers.Provider, names map[string]string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for name, p := range provs {
		c, ok := p.(providers.Closer)
		if !ok {
			continue
		}
		wg.Go(func() {
			if err := c.Close(ctx); err != nil {
				log.Warn(named(displayName(names, name), err), slog.String("event", "close_failed"), slog.String("provider", name))
			}
		})
	}
	wg.Wait()
}

func revealAll(s *Secrets) []string {
	values := make([]string, len(s.Vars))
	for i, v := range s.Vars {
		values[i] = v.Value.Reveal()
	}
	return values
}

// warnShortValues names, once, the variables whose values are too short to
// mask without redacting ordinary output.
func warnShortValues(log *slog.Logger, s *Secrets, skipped []int) {
	if len(skipped) == 0 {
		return
	}
	names := make([]string, len(skipped))
	for i, idx := range skipped {
		names[i] = s.Vars[idx].Name
	}
	log.Warn(fmt.Sprintf("not masking %s: values shorter than %d bytes would redact ordinary output", strings.Join(names, ", "), mask.MinLen))
}

// rotatingMask masks the child's output with every value it was given so
// far: when secrets rotate, the new values are masked too, and the old ones
// stay masked, since a stopping child may still print them. It outlives the
// children; Close ends it.
type rotatingMask struct {
	mu     sync.Mutex
	dst    io.Writer
	values []string
	w      *mask.Writer
}

func newRotatingMask(dst io.Writer, values []string) *rotatingMask {
	return &rotatingMask{dst: dst, values: values, w: mask.New(dst, values, mask.Options{})}
}

func (m *rotatingMask) skipped() []int { return m.w.Skipped() }

// Write holds the lock across the inner write, so that add never closes a
// writer in use.
func (m *rotatingMask) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.w.Write(p)
}

// add starts masking values as well.
func (m *rotatingMask) add(values []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The old writer's Close writes out what it held back, masked.
	_ = m.w.Close()
	for _, v := range values {
		if !slices.Contains(m.values, v) {
			m.values = append(m.values, v)
		}
	}
	m.w = mask.New(m.dst, m.values, mask.Options{})
}

func (m *rotatingMask) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.w.Close()
}

// named prefixes err with the provider's name unless it names it already,
// as provider errors do: `vault "prod": read secret/app: not found`.
func named(name string, err error) string {
	if msg := err.Error(); strings.Contains(msg, name+":") {
		return msg
	}
	return name + ": " + err.Error()
}

package inject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/inject/serve"
)

// Serve is how clients reach the child across restarts: `listen:` or
// `proxy:`, and `watch.ready:`.
type Serve struct {
	// Listen are sockets secretrun opens once and hands to every child at
	// fd 3, 4, ... (systemd's socket activation protocol).
	Listen []serve.ListenSpec
	// Proxy is the address secretrun accepts on and forwards from to the
	// current child, which listens on 127.0.0.1:$PORT.
	Proxy string
	// Ready says when a new child counts as up; ReadyTimeout bounds the
	// wait.
	Ready        serve.Check
	ReadyTimeout time.Duration
}

// serveWith opens the sockets of s for the supervisor's children. The
// returned func closes them, once every child is gone.
func (sup *Supervisor) serveWith(s *Serve, log *slog.Logger) (func(), error) {
	sv, files, closeAll, err := openServing(s, log)
	if err != nil {
		return nil, err
	}
	sup.serving, sup.Listeners, sup.ReadyTimeout = sv, files, s.ReadyTimeout
	if len(files) > 0 {
		// The child sets LISTEN_PID to its own PID before it execs the
		// command, which secretrun cannot do between fork and exec.
		path, args, err := serve.ShimArgs(sup.Command.Args)
		if err != nil {
			closeAll()
			return nil, err
		}
		sup.Command.Path, sup.Command.Args = path, args
	}
	return closeAll, nil
}

// openServing opens the sockets of s. The returned closer ends them once
// every child is gone.
func openServing(s *Serve, log *slog.Logger) (serving, []*os.File, func(), error) {
	if s.Proxy != "" {
		ln, err := net.Listen("tcp", s.Proxy)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("proxy.listen: %w", err)
		}
		p := serve.NewProxy(ln, log)
		go func() { _ = p.Serve() }()
		closeAll := func() {
			_ = p.Close()
			p.CloseAll()
		}
		return &proxyServing{proxy: p, check: s.Ready}, nil, closeAll, nil
	}
	listeners, err := serve.Listen(s.Listen)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listen: %w", err)
	}
	files := make([]*os.File, len(listeners))
	for i, l := range listeners {
		files[i] = l.File
	}
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	return &socketServing{env: serve.Env(listeners), check: s.Ready}, files, closeAll, nil
}

// proxyServing gives each child a loopback port of its own behind the
// proxy.
type proxyServing struct {
	proxy *serve.Proxy
	check serve.Check
}

func (s *proxyServing) prepare() (slot, error) {
	port, err := serve.FreePort()
	if err != nil {
		return nil, fmt.Errorf("find a port for the child: %w", err)
	}
	sl := &portSlot{proxy: s.proxy, check: s.check, port: port}
	if s.check.Notify {
		if sl.notify, err = serve.NewNotify(); err != nil {
			return nil, err
		}
	}
	return sl, nil
}

// portSlot is one child's port, and its notify socket.
type portSlot struct {
	proxy  *serve.Proxy
	check  serve.Check
	port   int
	notify *serve.Notify

	mu       sync.Mutex
	released bool
}

func (sl *portSlot) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(sl.port)) }

func (sl *portSlot) env() []string {
	env := []string{"PORT=" + strconv.Itoa(sl.port)}
	if sl.notify != nil {
		env = append(env, sl.notify.Env())
	}
	return env
}

func (sl *portSlot) ready(ctx context.Context) error {
	return sl.check.Wait(ctx, sl.port, sl.notify)
}

func (sl *portSlot) activate() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if !sl.released {
		sl.proxy.SetBackend(sl.addr())
	}
}

func (sl *portSlot) release() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.released {
		return
	}
	sl.released = true
	if sl.notify != nil {
		_ = sl.notify.Close()
	}
	if sl.proxy.Backend() == sl.addr() {
		// Nobody serves here any more: new connections wait for the
		// next child rather than fail against a closed port.
		sl.proxy.SetBackend("")
	}
}

// socketServing hands every child the same sockets.
type socketServing struct {
	env   []string
	check serve.Check
}

func (s *socketServing) prepare() (slot, error) {
	sl := &socketSlot{vars: s.env, check: s.check}
	if s.check.Notify {
		var err error
		if sl.notify, err = serve.NewNotify(); err != nil {
			return nil, err
		}
	}
	return sl, nil
}

type socketSlot struct {
	vars   []string
	check  serve.Check
	notify *serve.Notify
	once   sync.Once
}

func (sl *socketSlot) env() []string {
	if sl.notify != nil {
		return append(sl.vars[:len(sl.vars):len(sl.vars)], sl.notify.Env())
	}
	return sl.vars
}

func (sl *socketSlot) ready(ctx context.Context) error { return sl.check.Wait(ctx, 0, sl.notify) }

// activate has nothing to do: the children share the sockets.
func (sl *socketSlot) activate() {}

func (sl *socketSlot) release() {
	sl.once.Do(func() {
		if sl.notify != nil {
			_ = sl.notify.Close()
		}
	})
}

// withVars sets vars ("NAME=value") in env, replacing what env had under
// those names: a child's $PORT is its own whatever secretrun was given.
func withVars(env, vars []string) []string {
	if len(vars) == 0 {
		return env
	}
	names := map[string]bool{}
	for _, kv := range vars {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	out := make([]string, 0, len(env)+len(vars))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !names[name] {
			out = append(out, kv)
		}
	}
	return append(out, vars...)
}

// notReadyInTime tells a readiness wait that timed out from one that ended
// otherwise.
func notReadyInTime(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

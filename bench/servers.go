//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/infisical/infisicaltest"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// counter tells how many requests a backend has answered so far, by
// endpoint.
type counter interface {
	counts() map[string]int
}

// diff is what happened between two snapshots of a counter.
func diff(before, after map[string]int) map[string]int {
	d := map[string]int{}
	for k, n := range after {
		if n-before[k] > 0 {
			d[k] = n - before[k]
		}
	}
	return d
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// countingProxy forwards to a server and counts the requests by endpoint:
// the Vault and moto servers keep no counters a client can read. It also
// keeps when each request came, so that the polls of a running watch loop
// can be told apart.
type countingProxy struct {
	url   string
	srv   *httptest.Server
	name  func(*http.Request) string
	mu    sync.Mutex
	count map[string]int
	log   []stamp
}

// stamp is one request: when it came and its endpoint.
type stamp struct {
	at       time.Time
	endpoint string
}

func newCountingProxy(target string, name func(*http.Request) string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &countingProxy{name: name, count: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := p.name(r)
		p.mu.Lock()
		p.count[name]++
		p.log = append(p.log, stamp{time.Now(), name})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	p.url = p.srv.URL
	return p, nil
}

func (p *countingProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.count)
}

func (p *countingProxy) close() { p.srv.Close() }

// bursts groups the requests that came after since into bursts: runs of
// requests with less than gap between one and the next. A watch poll is
// one burst when gap is well below the interval. quiet reports whether the
// last burst has ended: no request for gap.
func (p *countingProxy) bursts(since time.Time, gap time.Duration) (out []map[string]int, quiet bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, s := range p.log {
		if s.at.Before(since) {
			continue
		}
		if len(out) == 0 || s.at.Sub(last) >= gap {
			out = append(out, map[string]int{})
		}
		out[len(out)-1][s.endpoint]++
		last = s.at
	}
	return out, time.Since(last) >= gap
}

// vaultEndpoint names a Vault request by method and path, with the
// per-secret part of bench paths folded so that a table stays short.
func vaultEndpoint(r *http.Request) string {
	path := r.URL.Path
	for _, kind := range []string{"/data/bench/", "/metadata/bench/", "/ui/mounts/"} {
		if i := strings.Index(path, kind); i >= 0 {
			path = path[:i+len(kind)] + "…"
		}
	}
	return r.Method + " " + path
}

// awsEndpoint names a Secrets Manager request by its operation, which the
// JSON protocol carries in X-Amz-Target.
func awsEndpoint(r *http.Request) string {
	t := r.Header.Get("X-Amz-Target")
	if _, op, ok := strings.Cut(t, "."); ok {
		return op
	}
	return r.Method + " " + r.URL.Path
}

// vaultBackend is a running Vault dev server with a counting proxy.
type vaultBackend struct {
	*vaulttest.Vault
	proxy *countingProxy
	stop  func()
}

func startVault() (*vaultBackend, error) {
	v, stop, err := vaulttest.StartVault()
	if err != nil {
		return nil, err
	}
	p, err := newCountingProxy(v.Addr, vaultEndpoint)
	if err != nil {
		stop()
		return nil, err
	}
	return &vaultBackend{Vault: v, proxy: p, stop: func() { p.close(); stop() }}, nil
}

// motoBackend is a running moto_server with a counting proxy.
type motoBackend struct {
	*mototest.Server
	proxy *countingProxy
}

func startMoto() (*motoBackend, error) {
	s, err := mototest.Start()
	if err != nil {
		return nil, err
	}
	p, err := newCountingProxy(s.URL, awsEndpoint)
	if err != nil {
		s.Stop()
		return nil, err
	}
	return &motoBackend{Server: s, proxy: p}, nil
}

func (m *motoBackend) stop() { m.proxy.close(); m.Server.Stop() }

// infisicalBackend is the Infisical test server with a counting proxy:
// the server counts its own requests too, but does not say when they came.
type infisicalBackend struct {
	*infisicaltest.Server
	proxy *countingProxy
	token string
	tb    *cleanupTB
}

// infisicalEndpoint names a request as infisicaltest.Server counts it.
func infisicalEndpoint(r *http.Request) string {
	switch p := r.URL.Path; {
	case p == "/api/v1/auth/universal-auth/login":
		return infisicaltest.Login
	case p == "/api/v1/auth/token/renew":
		return infisicaltest.Renew
	case p == "/api/v3/secrets/raw":
		return infisicaltest.List
	case strings.HasPrefix(p, "/api/v3/secrets/raw/"):
		return infisicaltest.Get
	case p == "/api/v1/folders":
		return infisicaltest.Folders
	}
	return r.Method + " " + r.URL.Path
}

const (
	infisicalProject = "7a1d2c3e-0000-4000-8000-00000000beef"
	infisicalEnv     = "bench"
	infisicalClient  = "bench-client"
)

func startInfisical() (*infisicalBackend, error) {
	tb := &cleanupTB{}
	s := infisicaltest.New(tb)
	s.AddProject(infisicalProject, "bench", infisicalEnv)
	s.AddIdentity(infisicalClient, randomValue(), infisicalProject)
	p, err := newCountingProxy(s.URL, infisicalEndpoint)
	if err != nil {
		tb.close()
		return nil, err
	}
	tb.Cleanup(p.close)
	return &infisicalBackend{Server: s, proxy: p, token: s.IssueToken(infisicalClient), tb: tb}, nil
}

// cleanupTB lets infisicaltest.New, which asks a testing.TB to stop the
// server at the end of a test, run in this program: New calls only Helper
// and Cleanup, and any other method would panic on the nil embedded TB.
type cleanupTB struct {
	testing.TB
	cleanups []func()
}

func (t *cleanupTB) Helper()          {}
func (t *cleanupTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *cleanupTB) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// randomValue is a fresh secret value: 32 hex characters, long enough to be
// masked, and never written anywhere but the backend and the child.
func randomValue() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// parallel runs f(0..n-1) on a few goroutines and returns the first error.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	const workers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		return fmt.Errorf("seeding: %w", first)
	}
	return nil
}

// sealableVault is a Vault dev server of the fault measurements' own, with
// its unseal key: sealing the shared one would break every other figure,
// and vaulttest does not keep the key.
type sealableVault struct {
	*vaulttest.Vault
	unsealKey string
	cmd       *exec.Cmd
	dir       string
}

// startSealableVault starts `vault server -dev` as vaulttest does and
// reads the unseal key it prints.
func startSealableVault() (*sealableVault, error) {
	bin, err := vaulttest.Binary()
	if err != nil {
		return nil, err
	}
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "secretrun-bench-vault-")
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+vaulttest.RootToken, "-dev-listen-address="+addr)
	// A home of its own: the dev server writes ~/.vault-token.
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	v := &sealableVault{Vault: &vaulttest.Vault{Addr: "http://" + addr}, cmd: cmd, dir: dir}
	keys := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Unseal Key: "); ok {
				keys <- strings.TrimSpace(k)
			}
		}
		// Vault keeps writing its log; it goes nowhere once the key is read.
		close(keys)
	}()
	select {
	case k, ok := <-keys:
		if !ok {
			v.stop()
			return nil, errors.New("vault dev server exited without printing its unseal key")
		}
		v.unsealKey = k
	case <-time.After(60 * time.Second):
		v.stop()
		return nil, errors.New("vault dev server printed no unseal key within 60s")
	}
	if v.Root, err = v.Client(vaulttest.RootToken); err != nil {
		v.stop()
		return nil, err
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		h, err := v.Root.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed {
			return v, nil
		}
		if time.Now().After(deadline) {
			v.stop()
			return nil, fmt.Errorf("vault dev server on %s did not become healthy: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v *sealableVault) stop() {
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = v.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	os.RemoveAll(v.dir)
}

// freePortPair finds a loopback port p such that p and p+1 are free: the
// dev server takes the next port for its cluster listener.
func freePortPair() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free pair of loopback ports")
}

//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

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
// the Vault and moto servers keep no counters a client can read.
type countingProxy struct {
	url   string
	srv   *httptest.Server
	name  func(*http.Request) string
	mu    sync.Mutex
	count map[string]int
}

func newCountingProxy(target string, name func(*http.Request) string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &countingProxy{name: name, count: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.count[p.name(r)]++
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

// infisicalBackend is the Infisical test server, which counts its own
// requests.
type infisicalBackend struct {
	*infisicaltest.Server
	token string
	tb    *cleanupTB
}

func (b *infisicalBackend) counts() map[string]int { return b.Counts() }

const (
	infisicalProject = "7a1d2c3e-0000-4000-8000-00000000beef"
	infisicalEnv     = "bench"
	infisicalClient  = "bench-client"
)

func startInfisical() *infisicalBackend {
	tb := &cleanupTB{}
	s := infisicaltest.New(tb)
	s.AddProject(infisicalProject, "bench", infisicalEnv)
	s.AddIdentity(infisicalClient, randomValue(), infisicalProject)
	return &infisicalBackend{Server: s, token: s.IssueToken(infisicalClient), tb: tb}
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

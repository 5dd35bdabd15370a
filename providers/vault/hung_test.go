package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest/faultproxy"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// readTimeout is a poll's timeout at its shortest: what a Fetch or Versions
// after an outage has to work with.
const readTimeout = 3 * time.Second

// hungRenewal is a provider logged in with AppRole through a fault proxy,
// whose token is due for its renewal, and a Renew caught by a black hole.
type hungRenewal struct {
	p     *provider
	proxy *faultproxy.Proxy
	src   *providers.Source
	// renewed receives the hung Renew's error; cancel ends it.
	renewed chan error
	cancel  context.CancelFunc
}

// startHungRenewal logs in, moves the provider's clock past the token's
// renewal point, black-holes Vault, starts Renew with the renewer's 30s
// timeout and returns once its request is in flight, with Vault answering
// again. role changes the AppRole role before the login.
func startHungRenewal(t *testing.T, v *vaulttest.Vault, role map[string]any) *hungRenewal {
	t.Helper()
	path := unique("hung-renewal")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, mount, _, _ := appRole(t, v, path)
	// Versions asks for the metadata, so that it too needs Vault.
	policy := unique("metadata-reader")
	rules := `path "secret/data/` + path + `" { capabilities = ["read"] }
path "secret/metadata/` + path + `" { capabilities = ["read"] }`
	if err := v.Root.Sys().PutPolicy(policy, rules); err != nil {
		t.Fatal(err)
	}
	settings := map[string]any{"token_policies": policy}
	for k, val := range role {
		settings[k] = val
	}
	write(t, v.Root, "auth/"+mount+"/role/ci", settings)
	proxy := faultproxy.Start(t, strings.TrimPrefix(v.Addr, "http://"))
	p := newProvider(t, yaml, newEnv(map[string]string{"VAULT_ADDR": proxy.URL(), "VAULT_MAX_RETRIES": "0"}))
	h := &hungRenewal{p: p, proxy: proxy, src: source(t, p, "path: secret/"+path), renewed: make(chan error, 1)}
	if r := fetchOne(t, p, "path: secret/"+path); r.Err != nil {
		t.Fatal(r.Err)
	}
	// The login token lasts an hour: 50 minutes on, Renew must act on it.
	p.now = func() time.Time { return time.Now().Add(50 * time.Minute) }
	// An idle connection silenced by the black hole would stay silent after
	// it and cost the next read its timeout whatever the locking: without
	// one, the renewal gets the only connection the black hole silences.
	p.httpc.CloseIdleConnections()
	accepted := proxy.Connections()
	proxy.Set(faultproxy.Blackhole)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		_, err := p.Renew(ctx)
		h.renewed <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for proxy.Connections() == accepted {
		if time.Now().After(deadline) {
			t.Fatal("Renew sent nothing to the black-holed Vault")
		}
		time.Sleep(10 * time.Millisecond)
	}
	proxy.Set(faultproxy.Pass)
	return h
}

// readPromptly fetches and labels the source with a poll's short timeout,
// failing the test unless both succeed while the hung Renew is still
// waiting.
func (h *hungRenewal) readPromptly(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	start := time.Now()
	res, err := h.p.Fetch(ctx, []*providers.Source{h.src})
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		t.Fatalf("Fetch with Vault answering again and a renewal hung: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	if values(res[0])["DB_URL"] != "postgres://app" {
		t.Fatalf("Fetch read %v", values(res[0]))
	}
	labels, err := h.p.Versions(ctx, []*providers.Source{h.src})
	if err != nil {
		t.Fatalf("Versions with Vault answering again and a renewal hung: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	if labels[0] != "1" {
		t.Fatalf("Versions labelled the source %q, want 1", labels[0])
	}
	t.Logf("Fetch and Versions took %v beside the hung renewal", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-h.renewed:
		t.Fatalf("the renewal ended (%v) before the reads: the black hole did not hold it", err)
	default:
	}
}

// endRenewal cancels the hung Renew and checks that it gave nothing up.
func (h *hungRenewal) endRenewal(t *testing.T) {
	t.Helper()
	h.cancel()
	if err := <-h.renewed; err == nil {
		t.Fatal("the hung Renew succeeded")
	}
}

// A token renewal caught by a black hole holds up no read once Vault
// answers again: the watch's polls have short timeouts of their own, and
// queued behind the renewal they would fail until it timed out. The token
// is then renewed by the next Renew.
func TestHungTokenRenewalDoesNotHoldUpReads(t *testing.T) {
	v := needVault(t)
	h := startHungRenewal(t, v, nil)
	token := h.p.tok.token
	h.readPromptly(t)
	h.endRenewal(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ren, err := h.p.Renew(ctx)
	if err != nil {
		t.Fatalf("Renew after the outage: %v", err)
	}
	if h.p.tok.token != token {
		t.Error("the token was replaced rather than renewed")
	}
	// Renewed for another hour from the provider's clock, so the next
	// renewal is about 40 minutes ahead of it.
	if d := ren.Next.Sub(h.p.now()); d < 30*time.Minute {
		t.Errorf("next renewal in %v after renewing the token, want about 40m", d)
	}
	if err := h.p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !tokenRevoked(v, token) {
		t.Error("the renewed login token is still valid after Close")
	}
}

// A new login caught by a black hole (the token cannot be renewed: batch
// tokens never are) holds up no read either while the old token is still
// good; the next Renew logs in, once.
func TestHungReloginDoesNotHoldUpReads(t *testing.T) {
	v := needVault(t)
	h := startHungRenewal(t, v, map[string]any{"token_type": "batch"})
	old := h.p.tok.token
	h.readPromptly(t)
	h.endRenewal(t)
	if h.p.tok.token != old {
		t.Fatal("the abandoned login replaced the token")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.p.Renew(ctx); err != nil {
		t.Fatalf("Renew after the outage: %v", err)
	}
	if h.p.tok.token == old || h.p.tok.gen != 2 {
		t.Fatalf("after Renew: generation %d, want a new login token (generation 2)", h.p.tok.gen)
	}
	h.readPromptly(t)
}

// Reads that all find their token run out log in once between them, not
// once each.
func TestConcurrentReadsLogInOnce(t *testing.T) {
	f := newFakeVault(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("sa-jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, "auth:\n  method: kubernetes\n  role: app\n  token_file: "+file, newEnv(map[string]string{"VAULT_ADDR": f.server.URL}))
	src := source(t, p, "path: secret/app")
	if r := fetchOne(t, p, "path: secret/app"); r.Err != nil {
		t.Fatal(r.Err)
	}
	// Two hours on, the one-hour login token has run out.
	p.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	const readers = 16
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, readers)
	)
	for i := range readers {
		wg.Go(func() {
			<-start
			if i%2 == 0 {
				_, errs[i] = p.Fetch(context.Background(), []*providers.Source{src})
			} else {
				_, errs[i] = p.Versions(context.Background(), []*providers.Source{src})
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := f.count("PUT /v1/auth/kubernetes/login"); n != 2 {
		t.Errorf("logins = %d, want 2: the first one and one for all the readers", n)
	}
	if p.tok.token != "k8s-token-2" {
		t.Errorf("token in use is %q, want k8s-token-2", p.tok.token)
	}
}

package vault

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// lookupGate holds every mount lookup until a read of the data it is about
// has arrived (or until patience runs out), so a test can tell whether the
// two were made at once: made one after the other, the lookup waits in
// vain. It records, for each request, whether it came before or after a
// lookup was answered.
type lookupGate struct {
	dataPrefix string
	patience   time.Duration

	dataSeen chan struct{}
	seenOnce sync.Once

	mu               sync.Mutex
	log              []string
	waitedInVain     bool
	lookupsAnswered  int
	dataAfterAnswers []int // for each data read, how many lookups were answered before it came
	conns            atomic.Int64
}

func newLookupGate(dataPrefix string) *lookupGate {
	return &lookupGate{dataPrefix: dataPrefix, patience: 5 * time.Second, dataSeen: make(chan struct{})}
}

// wrap puts the gate in front of next.
func (g *lookupGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.log = append(g.log, r.Method+" "+r.URL.Path)
		if strings.HasPrefix(r.URL.Path, g.dataPrefix) {
			g.dataAfterAnswers = append(g.dataAfterAnswers, g.lookupsAnswered)
		}
		g.mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, g.dataPrefix):
			g.seenOnce.Do(func() { close(g.dataSeen) })
		case strings.HasPrefix(r.URL.Path, "/v1/sys/internal/ui/mounts/"):
			select {
			case <-g.dataSeen:
			case <-time.After(g.patience):
				g.mu.Lock()
				g.waitedInVain = true
				g.mu.Unlock()
			}
			defer func() {
				g.mu.Lock()
				g.lookupsAnswered++
				g.mu.Unlock()
			}()
		}
		next.ServeHTTP(w, r)
	})
}

func (g *lookupGate) countConns(s *http.Server) {
	s.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			g.conns.Add(1)
		}
	}
}

func TestFirstReadGoesAlongsideTheMountLookup(t *testing.T) {
	v := needVault(t)
	path := unique("guess")
	kvPut(t, v.Root, "secret", path, map[string]any{"API_KEY": "k-guess"})
	u, err := url.Parse(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	gate := newLookupGate("/v1/secret/data/" + path)
	front := httptest.NewServer(gate.wrap(httputil.NewSingleHostReverseProxy(u)))
	defer front.Close()

	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": front.URL, "VAULT_TOKEN": vaulttest.RootToken}))
	r := fetchOne(t, p, "path: secret/"+path)
	if r.Err != nil || values(r)["API_KEY"] != "k-guess" {
		t.Fatalf("got %v, %v", values(r), r.Err)
	}
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if gate.waitedInVain {
		t.Errorf("the mount lookup was answered before the read was made: two round trips, one after the other (%v)", gate.log)
	}
	if len(gate.log) != 2 {
		t.Errorf("requests %v, want the lookup and one read", gate.log)
	}
}

func TestWrongGuessesAreDropped(t *testing.T) {
	v := needVault(t)
	// A KV v1 mount where the guessed path is a key of its own: the guess
	// reads it, and it must not be what the source gets.
	kv1 := unique("gkv1")
	if err := v.Root.Sys().Mount(kv1, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	write(t, v.Root, kv1+"/app", map[string]any{"WHO": "kv1/app"})
	write(t, v.Root, kv1+"/data/app", map[string]any{"WHO": "the guessed key, wrongly"})
	// A KV v2 mount two segments deep: the guess at its first segment reads
	// a path no engine serves.
	deep := unique("gdeep") + "/kv"
	if err := v.Root.Sys().Mount(deep, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	kvPut(t, v.Root, deep, "app", map[string]any{"WHO": "deep/app"})

	for _, tc := range []struct{ path, want string }{
		{kv1 + "/app", "kv1/app"},
		{deep + "/app", "deep/app"},
	} {
		p := rootProvider(t, v)
		r := fetchOne(t, p, "path: "+tc.path)
		if r.Err != nil || values(r)["WHO"] != tc.want {
			t.Errorf("%s: got %v, %v; want WHO=%s", tc.path, values(r), r.Err, tc.want)
		}
	}
}

// fakeKV2 answers a mount lookup and a KV v2 read of secret/app, as Vault
// does, for the TLS tests: the dev server here speaks plain HTTP.
func fakeKV2(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/sys/internal/ui/mounts/secret/app":
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"path": "secret/", "type": "kv", "options": map[string]any{"version": "2"}}})
	case "/v1/secret/data/app":
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": map[string]any{"A": "b"}, "metadata": map[string]any{"version": 1}}})
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[]}`))
	}
}

// tlsFetch reads secret/app from a TLS server behind gate, speaking HTTP/2
// or only HTTP/1.1.
func tlsFetch(t *testing.T, http2 bool) *lookupGate {
	t.Helper()
	gate := newLookupGate("/v1/secret/data/app")
	gate.patience = time.Second
	srv := httptest.NewUnstartedServer(gate.wrap(http.HandlerFunc(fakeKV2)))
	srv.EnableHTTP2 = http2
	gate.countConns(srv.Config)
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, "ca_cert: "+ca, newEnv(map[string]string{"VAULT_ADDR": srv.URL, "VAULT_TOKEN": "t"}))
	res, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/app")})
	if err != nil || res[0].Err != nil || values(res[0])["A"] != "b" {
		t.Fatalf("fetch: %v %v %v", err, res[0].Err, values(res[0]))
	}
	return gate
}

func TestGuessSharesTheConnectionOverHTTP2(t *testing.T) {
	gate := tlsFetch(t, true)
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if gate.waitedInVain {
		t.Errorf("over HTTP/2 the read waited for the mount lookup (%v)", gate.log)
	}
	if n := gate.conns.Load(); n != 1 {
		t.Errorf("%d connections (TLS handshakes), want 1", n)
	}
}

func TestNoGuessOverHTTP1WithTLS(t *testing.T) {
	gate := tlsFetch(t, false)
	gate.mu.Lock()
	defer gate.mu.Unlock()
	// A guess here would need a second handshake: the read must come after
	// the lookup, on the same connection.
	if len(gate.dataAfterAnswers) != 1 || gate.dataAfterAnswers[0] != 1 {
		t.Errorf("reads came after %v answered lookups, want one read after the lookup (%v)", gate.dataAfterAnswers, gate.log)
	}
	if n := gate.conns.Load(); n != 1 {
		t.Errorf("%d connections (TLS handshakes), want 1", n)
	}
}

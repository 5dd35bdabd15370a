package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

func TestConformance(t *testing.T) {
	v := needVault(t)
	p := rootProvider(t, v)
	base := unique("conformance")
	providertest.Run(t, providertest.Backend{
		Provider: p,
		Name:     "test",
		Put: func(t *testing.T, name string, fields map[string]string) string {
			data := map[string]any{}
			for k, val := range fields {
				data[k] = val
			}
			kvPut(t, v.Root, "secret", base+"/"+name, data)
			return "path: secret/" + base + "/" + name
		},
		Missing: func(t *testing.T) string { return "path: secret/" + base + "/does-not-exist" },
	})
}

func TestKV2VersionsPinningAndDeletion(t *testing.T) {
	v := needVault(t)
	p := rootProvider(t, v)
	path := unique("versions")
	for i := 1; i <= 3; i++ {
		kvPut(t, v.Root, "secret", path, map[string]any{"PASSWORD": fmt.Sprintf("pw-%d", i)})
	}
	latest := source(t, p, "path: secret/"+path)
	pinned := source(t, p, "path: secret/"+path+"\nversion: 1")

	res, err := p.Fetch(context.Background(), []*providers.Source{latest, pinned})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(res[0]); got["PASSWORD"] != "pw-3" || res[0].Version != "3" {
		t.Errorf("latest: got version %q, want 3 with pw-3", res[0].Version)
	}
	if got := values(res[1]); got["PASSWORD"] != "pw-1" || res[1].Version != "1" {
		t.Errorf("pinned: got version %q, want 1 with pw-1", res[1].Version)
	}
	if got := versionsOf(t, p, latest, pinned); got[0] != "3" || got[1] != "1" {
		t.Errorf("Versions = %q, want [3 1]", got)
	}

	// Deleting the latest version changes what a read returns, so the label
	// must change although current_version does not.
	if err := v.Root.KVv2("secret").Delete(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	if got := versionsOf(t, p, latest); got[0] != "3-deleted" {
		t.Errorf("after delete, Versions = %q, want 3-deleted", got[0])
	}
	res, err = p.Fetch(context.Background(), []*providers.Source{latest, pinned})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, providers.ErrNotFound) || !strings.Contains(res[0].Err.Error(), "deleted") ||
		!strings.Contains(res[0].Err.Error(), "secret/"+path) {
		t.Errorf("deleted latest: got %v, want a not-found error saying it was deleted and naming the path", res[0].Err)
	}
	mustNotContain(t, res[0].Err, "pw-1", "pw-2", "pw-3")
	if res[1].Err != nil || values(res[1])["PASSWORD"] != "pw-1" {
		t.Errorf("pinned version 1 after deleting 3: %v", res[1].Err)
	}

	if err := v.Root.KVv2("secret").Destroy(context.Background(), path, []int{2}); err != nil {
		t.Fatal(err)
	}
	r := fetchOne(t, p, "path: secret/"+path+"\nversion: 2")
	if !errors.Is(r.Err, providers.ErrNotFound) || !strings.Contains(r.Err.Error(), "destroyed") {
		t.Errorf("destroyed version: got %v", r.Err)
	}
	r = fetchOne(t, p, "path: secret/"+path+"\nversion: 9")
	if !errors.Is(r.Err, providers.ErrNotFound) {
		t.Errorf("version that never existed: got %v", r.Err)
	}
}

func TestKV1Mount(t *testing.T) {
	v := needVault(t)
	mount := unique("kv1")
	if err := v.Root.Sys().Mount(mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	write(t, v.Root, mount+"/app/prod", map[string]any{"API_KEY": "k1", "PORT": 8080})
	p := rootProvider(t, v)
	src := source(t, p, "path: "+mount+"/app/prod")
	res, err := p.Fetch(context.Background(), []*providers.Source{src})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(res[0]); got["API_KEY"] != "k1" || got["PORT"] != "8080" {
		t.Errorf("got %v", got)
	}
	if got := versionsOf(t, p, src); got[0] != "" {
		t.Errorf("KV v1 cannot tell versions, got label %q", got[0])
	}
	r := fetchOne(t, p, "path: "+mount+"/app/prod\nversion: 2")
	if r.Err == nil || !strings.Contains(r.Err.Error(), "KV v1") {
		t.Errorf("version on KV v1: got %v", r.Err)
	}
	r = fetchOne(t, p, "path: "+mount+"/app/missing")
	if !errors.Is(r.Err, providers.ErrNotFound) || !strings.Contains(r.Err.Error(), mount+"/") {
		t.Errorf("missing on KV v1: got %v, want not found naming the mount", r.Err)
	}
}

func TestValueTypes(t *testing.T) {
	v := needVault(t)
	p := rootProvider(t, v)
	path := unique("types")
	kvPut(t, v.Root, "secret", path, map[string]any{
		"S":    "a&b<c>",
		"N":    42,
		"F":    1.5,
		"B":    true,
		"NULL": nil,
		"OBJ":  map[string]any{"url": "a&b", "n": 1},
		"ARR":  []any{"x", 2},
		"BIG":  json.Number("1234567890123"),
	})
	r := fetchOne(t, p, "path: secret/"+path)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := map[string]string{
		"S": "a&b<c>", "N": "42", "F": "1.5", "B": "true", "NULL": "null",
		"OBJ": `{"n":1,"url":"a&b"}`, "ARR": `["x",2]`, "BIG": "1234567890123",
	}
	got := values(r)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	for k, f := range r.Fields {
		if nested := k == "OBJ" || k == "ARR"; f.Nested != nested {
			t.Errorf("%s: Nested = %v", k, f.Nested)
		}
	}
}

func TestNotFoundAndWrongMount(t *testing.T) {
	v := needVault(t)
	p := rootProvider(t, v)
	r := fetchOne(t, p, "path: secret/no/such/secret")
	if !errors.Is(r.Err, providers.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", r.Err)
	}
	if msg := r.Err.Error(); !strings.Contains(msg, "secret/no/such/secret") || !strings.Contains(msg, "mount secret/") {
		t.Errorf("%q does not name the path and the mount", msg)
	}

	r = fetchOne(t, p, "path: nomount/app")
	if !errors.Is(r.Err, providers.ErrNotFound) || !strings.Contains(r.Err.Error(), "no secrets engine is mounted") ||
		!strings.Contains(r.Err.Error(), "secret/") {
		t.Errorf("path under no mount: got %v, want a message listing the visible mounts", r.Err)
	}

	r = fetchOne(t, p, "path: secret")
	if r.Err == nil || !strings.Contains(r.Err.Error(), "mount secret/ itself") {
		t.Errorf("the mount itself: got %v", r.Err)
	}

	opt := source(t, p, "path: secret/no/such/secret\noptional: true")
	if !opt.Optional {
		t.Fatal("optional not parsed")
	}
}

func TestPermissionDenied(t *testing.T) {
	v := needVault(t)
	allowed, forbidden := unique("allowed"), unique("forbidden")
	kvPut(t, v.Root, "secret", allowed, map[string]any{"OK": "fine"})
	const hidden = "forbidden-value-must-not-leak"
	kvPut(t, v.Root, "secret", forbidden, map[string]any{"NOPE": hidden})
	policy := unique("limited")
	if err := v.Root.Sys().PutPolicy(policy, fmt.Sprintf(`path "secret/data/%s" { capabilities = ["read"] }`, allowed)); err != nil {
		t.Fatal(err)
	}
	tok, err := v.Root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}})
	if err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": tok.Auth.ClientToken}))
	okSrc := source(t, p, "path: secret/"+allowed)
	noSrc := source(t, p, "path: secret/"+forbidden)
	res, err := p.Fetch(context.Background(), []*providers.Source{okSrc, noSrc})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || values(res[0])["OK"] != "fine" {
		t.Errorf("allowed: %v", res[0].Err)
	}
	got := res[1].Err
	if !errors.Is(got, providers.ErrDenied) {
		t.Fatalf("forbidden: got %v, want ErrDenied", got)
	}
	want := fmt.Sprintf(`vault "test": read secret/%s: permission denied (token policies: `, forbidden)
	if !strings.HasPrefix(got.Error(), want) || !strings.Contains(got.Error(), policy) {
		t.Errorf("message %q, want it to start %q and list policy %s", got, want, policy)
	}
	mustNotContain(t, got, hidden, tok.Auth.ClientToken)

	// Metadata is not readable with this policy: Versions cannot tell, and
	// says so with an empty label instead of failing.
	if labels := versionsOf(t, p, okSrc); labels[0] != "" {
		t.Errorf("label without metadata access = %q, want empty", labels[0])
	}

	// A token Vault does not know is an authentication failure of the
	// whole fetch, not a denial of one source.
	bad := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": "hvs.not-a-real-token"}))
	_, err = bad.Fetch(context.Background(), []*providers.Source{source(t, bad, "path: secret/"+allowed)})
	if !errors.Is(err, providers.ErrAuth) {
		t.Errorf("unknown token: got %v, want ErrAuth", err)
	}
	if err != nil {
		mustNotContain(t, err, "hvs.not-a-real-token")
	}
}

// countingProxy forwards to Vault and counts requests by kind, and how many
// were in flight at once.
type countingProxy struct {
	mounts, reads    atomic.Int64
	inFlight, maxIn  atomic.Int64
	mu               sync.Mutex
	conns            map[string]bool
	seen             []string
	proxy            *httputil.ReverseProxy
	server           *httptest.Server
	pathPrefixToRead string
}

func newCountingProxy(t *testing.T, target, readPrefix string) *countingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	cp := &countingProxy{proxy: httputil.NewSingleHostReverseProxy(u), pathPrefixToRead: readPrefix, conns: map[string]bool{}}
	cp.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cp.inFlight.Add(1)
		defer cp.inFlight.Add(-1)
		for {
			m := cp.maxIn.Load()
			if n <= m || cp.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		cp.mu.Lock()
		cp.conns[r.RemoteAddr] = true
		cp.seen = append(cp.seen, r.Method+" "+r.URL.Path)
		cp.mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/sys/internal/ui/mounts/"):
			cp.mounts.Add(1)
		case strings.HasPrefix(r.URL.Path, cp.pathPrefixToRead):
			cp.reads.Add(1)
		}
		cp.proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(cp.server.Close)
	return cp
}

// requests returns every request so far, as "METHOD /v1/path".
func (cp *countingProxy) requests() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.seen)
}

func TestManyPathsOneMount(t *testing.T) {
	v := needVault(t)
	base := unique("many")
	const n = 100
	for i := range n {
		kvPut(t, v.Root, "secret", fmt.Sprintf("%s/%03d", base, i), map[string]any{fmt.Sprintf("K%03d", i): fmt.Sprintf("v%03d", i)})
	}
	cp := newCountingProxy(t, v.Addr, "/v1/secret/data/"+base+"/")
	p := newProvider(t, "max_concurrency: 8", newEnv(map[string]string{"VAULT_ADDR": cp.server.URL, "VAULT_TOKEN": vaulttest.RootToken}))
	var srcs []*providers.Source
	for i := range n {
		srcs = append(srcs, source(t, p, fmt.Sprintf("path: secret/%s/%03d", base, i)))
	}
	for round := range 2 {
		res, err := p.Fetch(context.Background(), srcs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil || values(r)[fmt.Sprintf("K%03d", i)] != fmt.Sprintf("v%03d", i) {
				t.Fatalf("round %d source %d: %v", round, i, r.Err)
			}
		}
	}
	if got := cp.mounts.Load(); got != 1 {
		t.Errorf("mount lookups = %d, want 1 for one mount over two fetches", got)
	}
	if got := cp.reads.Load(); got != 2*n {
		t.Errorf("reads = %d, want %d", got, 2*n)
	}
	if got := cp.maxIn.Load(); got < 2 || got > 8 {
		t.Errorf("at most %d requests were in flight at once; want concurrency between 2 and max_concurrency 8", got)
	}
	cp.mu.Lock()
	conns := len(cp.conns)
	cp.mu.Unlock()
	if conns > 16 {
		t.Errorf("%d connections for %d requests: keep-alive is not reused", conns, 2*n+1)
	}
}

package vault

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// readerPolicy creates a policy that reads secret/data/PATH and returns its
// name.
func readerPolicy(t *testing.T, v *vaulttest.Vault, path string) string {
	t.Helper()
	name := unique("reader")
	if err := v.Root.Sys().PutPolicy(name, fmt.Sprintf(`path "secret/data/%s" { capabilities = ["read"] }`, path)); err != nil {
		t.Fatal(err)
	}
	return name
}

func enableAuth(t *testing.T, v *vaulttest.Vault, method string) string {
	t.Helper()
	mount := unique(method)
	if err := v.Root.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: method}); err != nil {
		t.Fatal(err)
	}
	return mount
}

func tokenRevoked(v *vaulttest.Vault, token string) bool {
	_, err := v.Root.Auth().Token().Lookup(token)
	return err != nil
}

// appRole enables AppRole with a role that reads secret/PATH, and returns
// the provider settings that log in with it, the mount, role id and
// secret id.
func appRole(t *testing.T, v *vaulttest.Vault, path string) (yaml, mount, roleID, secretID string) {
	t.Helper()
	mount = enableAuth(t, v, "approle")
	write(t, v.Root, "auth/"+mount+"/role/ci", map[string]any{"token_policies": readerPolicy(t, v, path), "token_ttl": "1h"})
	role, err := v.Root.Logical().Read("auth/" + mount + "/role/ci/role-id")
	if err != nil {
		t.Fatal(err)
	}
	roleID = role.Data["role_id"].(string)
	sid := write(t, v.Root, "auth/"+mount+"/role/ci/secret-id", nil)
	secretID = sid.Data["secret_id"].(string)
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml = fmt.Sprintf("auth:\n  method: approle\n  mount: %s\n  role_id: %s\n  secret_id_file: %s\n", mount, roleID, file)
	return yaml, mount, roleID, secretID
}

func TestAppRoleLogin(t *testing.T) {
	v := needVault(t)
	path := unique("approle-app")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, mount, roleID, secretID := appRole(t, v, path)
	// VAULT_TOKEN must not matter when a login method is configured.
	p := newProvider(t, yaml, newEnv(map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": "hvs.ignored"}))
	r := fetchOne(t, p, "path: secret/"+path)
	if r.Err != nil || values(r)["DB_URL"] != "postgres://app" {
		t.Fatalf("fetch with approle: %v", r.Err)
	}
	token := p.tok.token
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !tokenRevoked(v, token) {
		t.Error("the approle token is still valid after Close")
	}

	badYAML := fmt.Sprintf("auth:\n  method: approle\n  mount: %s\n  role_id: %s\n  secret_id: wrong-secret-id-value\n", mount, roleID)
	bad := newProvider(t, badYAML, newEnv(map[string]string{"VAULT_ADDR": v.Addr}))
	_, err := bad.Fetch(context.Background(), []*providers.Source{source(t, bad, "path: secret/"+path)})
	if !errors.Is(err, providers.ErrAuth) {
		t.Fatalf("wrong secret_id: got %v, want ErrAuth", err)
	}
	mustNotContain(t, err, "wrong-secret-id-value", secretID)
}

// An operator revokes the token secretrun logged in for: the read that
// meets the revocation fails as an authentication error, not as a missing
// permission, and the next one logs in again.
func TestRevokedLoginTokenIsReplaced(t *testing.T) {
	v := needVault(t)
	path := unique("approle-revoked")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, _, _, _ := appRole(t, v, path)
	p := newProvider(t, yaml, newEnv(map[string]string{"VAULT_ADDR": v.Addr}))
	if r := fetchOne(t, p, "path: secret/"+path); r.Err != nil {
		t.Fatal(r.Err)
	}
	revoked := p.tok.token
	if err := v.Root.Auth().Token().RevokeTree(revoked); err != nil {
		t.Fatal(err)
	}
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/"+path)})
	if !errors.Is(err, providers.ErrAuth) || !strings.Contains(err.Error(), "the token is invalid or expired") {
		t.Fatalf("read with the revoked token: got %v, want ErrAuth naming the token", err)
	}
	if r := fetchOne(t, p, "path: secret/"+path); r.Err != nil || values(r)["DB_URL"] != "postgres://app" {
		t.Fatalf("read after the revocation: %v", r.Err)
	}
	renewed := p.tok.token
	if renewed == revoked {
		t.Fatal("no new login after the token was revoked")
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !tokenRevoked(v, renewed) {
		t.Error("the new login token is still valid after Close")
	}
}

// signJWT signs claims with RS256, as an identity provider would.
func signJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"test"}`)) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// jwtSetup enables a jwt auth method that trusts a new RSA key, with a role
// "ci" bound to audience aud, and returns the mount and the key.
func jwtSetup(t *testing.T, v *vaulttest.Vault, policy, aud string) (string, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	mount := enableAuth(t, v, "jwt")
	write(t, v.Root, "auth/"+mount+"/config", map[string]any{"jwt_validation_pubkeys": []string{pub}, "bound_issuer": "https://ci.example"})
	write(t, v.Root, "auth/"+mount+"/role/ci", map[string]any{
		"role_type": "jwt", "user_claim": "sub", "bound_audiences": []string{aud},
		"token_policies": []string{policy}, "token_ttl": "1h",
	})
	return mount, key
}

func ciClaims(aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": "https://ci.example", "sub": "repo:example/app:ref:refs/heads/main", "aud": aud,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

func TestJWTLogin(t *testing.T) {
	v := needVault(t)
	path := unique("jwt-app")
	kvPut(t, v.Root, "secret", path, map[string]any{"TOKEN": "from-jwt"})
	mount, key := jwtSetup(t, v, readerPolicy(t, v, path), "secretrun-test")
	file := filepath.Join(t.TempDir(), "jwt")
	if err := os.WriteFile(file, []byte(signJWT(t, key, ciClaims("secretrun-test"))), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, fmt.Sprintf("auth:\n  method: jwt\n  mount: %s\n  role: ci\n  jwt_file: %s\n", mount, file),
		newEnv(map[string]string{"VAULT_ADDR": v.Addr}))
	r := fetchOne(t, p, "path: secret/"+path)
	if r.Err != nil || values(r)["TOKEN"] != "from-jwt" {
		t.Fatalf("fetch with jwt: %v", r.Err)
	}

	wrongAud := filepath.Join(t.TempDir(), "jwt")
	if err := os.WriteFile(wrongAud, []byte(signJWT(t, key, ciClaims("someone-else"))), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := newProvider(t, fmt.Sprintf("auth:\n  method: jwt\n  mount: %s\n  role: ci\n  jwt_file: %s\n", mount, wrongAud),
		newEnv(map[string]string{"VAULT_ADDR": v.Addr}))
	if _, err := bad.Fetch(context.Background(), []*providers.Source{source(t, bad, "path: secret/"+path)}); !errors.Is(err, providers.ErrAuth) {
		t.Errorf("JWT for another audience: got %v, want ErrAuth", err)
	}
}

// TestJWTFromGitHubActions serves GitHub Actions' OIDC token endpoint
// locally and checks the provider asks it as actions/toolkit does.
func TestJWTFromGitHubActions(t *testing.T) {
	v := needVault(t)
	path := unique("gha-app")
	kvPut(t, v.Root, "secret", path, map[string]any{"DEPLOY": "yes"})
	const aud = "https://vault.example"
	mount, key := jwtSetup(t, v, readerPolicy(t, v, path), aud)
	const requestToken = "gha-request-token"
	var gotAudience, gotAuth string
	gha := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAudience, gotAuth = r.URL.Query().Get("audience"), r.Header.Get("Authorization")
		if r.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, "lost the query", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"count":1,"value":%q}`, signJWT(t, key, ciClaims(gotAudience)))
	}))
	defer gha.Close()
	p := newProvider(t, fmt.Sprintf("auth:\n  method: jwt\n  mount: %s\n  role: ci\n  audience: %s\n", mount, aud),
		newEnv(map[string]string{
			"VAULT_ADDR":                     v.Addr,
			"ACTIONS_ID_TOKEN_REQUEST_URL":   gha.URL + "/token?api-version=2.0",
			"ACTIONS_ID_TOKEN_REQUEST_TOKEN": requestToken,
		}))
	r := fetchOne(t, p, "path: secret/"+path)
	if r.Err != nil || values(r)["DEPLOY"] != "yes" {
		t.Fatalf("fetch with the GitHub Actions token: %v", r.Err)
	}
	if gotAudience != aud || gotAuth != "Bearer "+requestToken {
		t.Errorf("OIDC request: audience %q, authorization %q", gotAudience, gotAuth)
	}

	none := newProvider(t, fmt.Sprintf("auth:\n  method: jwt\n  mount: %s\n  role: ci\n", mount), newEnv(map[string]string{"VAULT_ADDR": v.Addr}))
	_, err := none.Fetch(context.Background(), []*providers.Source{source(t, none, "path: secret/"+path)})
	if !errors.Is(err, providers.ErrAuth) || !strings.Contains(err.Error(), "id-token: write") {
		t.Errorf("no JWT anywhere: got %v", err)
	}
}

func TestLoginLogoutToken(t *testing.T) {
	v := needVault(t)
	path := unique("login-app")
	kvPut(t, v.Root, "secret", path, map[string]any{"X": "y"})
	e := newEnv(map[string]string{"VAULT_ADDR": v.Addr})
	e.home = t.TempDir()
	p := newProvider(t, "{}", e)

	if err := p.Login(context.Background(), &scripted{answers: []string{"hvs.wrong"}}); !errors.Is(err, providers.ErrAuth) {
		t.Fatalf("login with a wrong token: got %v, want ErrAuth", err)
	}
	if _, err := e.keyring.Get(KeyringService, v.Addr); !errors.Is(err, providers.ErrNotFound) {
		t.Fatal("a rejected token was stored")
	}

	pr := &scripted{answers: []string{vaulttest.RootToken}}
	if err := p.Login(context.Background(), pr); err != nil {
		t.Fatal(err)
	}
	if stored, err := e.keyring.Get(KeyringService, v.Addr); err != nil || stored.Reveal() != vaulttest.RootToken {
		t.Fatalf("keyring after login: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.home, ".vault-token")); !os.IsNotExist(err) {
		t.Error("login wrote ~/.vault-token")
	}

	// A fresh run without VAULT_TOKEN finds the stored token.
	run := newProvider(t, "{}", e)
	if r := fetchOne(t, run, "path: secret/"+path); r.Err != nil || values(r)["X"] != "y" {
		t.Fatalf("fetch with the stored token: %v", r.Err)
	}

	if err := p.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Logout(context.Background()); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("second logout: got %v, want ErrNotFound", err)
	}
	after := newProvider(t, "{}", e)
	if _, err := after.Fetch(context.Background(), []*providers.Source{source(t, after, "path: secret/"+path)}); !errors.Is(err, providers.ErrAuth) {
		t.Errorf("fetch after logout: got %v, want ErrAuth", err)
	}
}

func TestLoginUserpass(t *testing.T) {
	v := needVault(t)
	path := unique("userpass-app")
	kvPut(t, v.Root, "secret", path, map[string]any{"Y": "z"})
	mount := enableAuth(t, v, "userpass")
	const password = "correct horse battery staple"
	write(t, v.Root, "auth/"+mount+"/users/alice", map[string]any{"password": password, "token_policies": readerPolicy(t, v, path)})
	e := newEnv(map[string]string{"VAULT_ADDR": v.Addr})
	p := newProvider(t, "auth:\n  method: userpass\n  mount: "+mount+"\n", e)

	err := p.Login(context.Background(), &scripted{answers: []string{"alice", "wrong password"}})
	if !errors.Is(err, providers.ErrAuth) {
		t.Fatalf("wrong password: got %v, want ErrAuth", err)
	}
	mustNotContain(t, err, "wrong password")

	pr := &scripted{answers: []string{"alice", password}}
	if err := p.Login(context.Background(), pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.asked) != 2 {
		t.Errorf("asked %q, want a username and a password", pr.asked)
	}
	run := newProvider(t, "auth:\n  method: userpass\n  mount: "+mount+"\n", e)
	if r := fetchOne(t, run, "path: secret/"+path); r.Err != nil || values(r)["Y"] != "z" {
		t.Fatalf("fetch with the userpass token: %v", r.Err)
	}
	// Close must not revoke a token the user logged in for.
	if err := run.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, _ := e.keyring.Get(KeyringService, v.Addr)
	if tokenRevoked(v, stored.Reveal()) {
		t.Error("Close revoked the token stored by login")
	}

	machine := newProvider(t, "auth:\n  method: approle\n  role_id: x\n", e)
	if err := machine.Login(context.Background(), &scripted{}); err == nil || !strings.Contains(err.Error(), "logs in by itself") {
		t.Errorf("login with approle: got %v", err)
	}
}

func TestTokenFromFile(t *testing.T) {
	v := needVault(t)
	path := unique("file-app")
	kvPut(t, v.Root, "secret", path, map[string]any{"F": "g"})
	e := newEnv(map[string]string{"VAULT_ADDR": v.Addr})
	e.home = t.TempDir()
	if err := os.WriteFile(filepath.Join(e.home, ".vault-token"), []byte(vaulttest.RootToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The keyring comes after ~/.vault-token for method token.
	if err := e.keyring.Set(KeyringService, v.Addr, providers.NewSecret("hvs.stale")); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, "{}", e)
	if r := fetchOne(t, p, "path: secret/"+path); r.Err != nil || values(r)["F"] != "g" {
		t.Fatalf("fetch with ~/.vault-token: %v", r.Err)
	}
}

func TestUnreachable(t *testing.T) {
	port := providertest.FreePort(t)
	addr := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": addr, "VAULT_TOKEN": "t", "VAULT_MAX_RETRIES": "0"}))
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/app")})
	if !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v, want ErrUnavailable naming %s", err, addr)
	}
}

func TestSealed(t *testing.T) {
	needVault(t)
	// A server of its own: sealing the shared one would break other tests.
	v, stop, err := vaulttest.StartVault()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	kvPut(t, v.Root, "secret", "app", map[string]any{"A": "b"})
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": vaulttest.RootToken, "VAULT_MAX_RETRIES": "0"}))
	src := source(t, p, "path: secret/app")
	if r := fetchOne(t, p, "path: secret/app"); r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := v.Root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = p.Fetch(context.Background(), []*providers.Source{src})
	if !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), v.Addr) || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("sealed: got %v, want ErrUnavailable naming the address and the seal", err)
	}
	if _, err := p.Versions(context.Background(), []*providers.Source{src}); !errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("Versions while sealed: got %v, want ErrUnavailable", err)
	}
}

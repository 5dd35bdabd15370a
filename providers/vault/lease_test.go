package vault

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// databaseSetup mounts the database engine against pg with a role "app"
// whose credentials last 60s, renewable up to 300s.
func databaseSetup(t *testing.T, v *vaulttest.Vault, pg *vaulttest.Postgres) string {
	t.Helper()
	return databaseSetupTTL(t, v, pg, "60s", "300s")
}

// databaseSetupTTL is databaseSetup with the role's default and max TTL.
func databaseSetupTTL(t *testing.T, v *vaulttest.Vault, pg *vaulttest.Postgres, ttl, maxTTL string) string {
	t.Helper()
	mount := unique("database")
	if err := v.Root.Sys().Mount(mount, &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	write(t, v.Root, mount+"/config/pg", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"allowed_roles":  "app",
		"connection_url": pg.URL(),
		"username":       "postgres",
		"password":       "unused-with-trust",
	})
	write(t, v.Root, mount+"/roles/app", map[string]any{
		"db_name":             "pg",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl":         ttl,
		"max_ttl":             maxTTL,
	})
	return mount
}

func roleExists(t *testing.T, pg *vaulttest.Postgres, name string) bool {
	t.Helper()
	out, err := pg.Query("SELECT count(*) FROM pg_roles WHERE rolname = '" + name + "'")
	if err != nil {
		t.Fatal(err)
	}
	return out == "1"
}

func leaseAlive(v *vaulttest.Vault, id string) bool {
	_, err := v.Root.Sys().Lookup(id)
	return err == nil
}

func TestDatabaseLeaseRenewRotateRevoke(t *testing.T) {
	v := needVault(t)
	pg := needPostgres(t)
	mount := databaseSetup(t, v, pg)
	path := mount + "/creds/app"
	p := rootProvider(t, v)
	offset := time.Duration(0)
	p.now = func() time.Time { return time.Now().Add(offset) }

	// Two sources of one leased path share one lease: the same user.
	byMap := source(t, p, "path: "+path+"\nmap:\n  DB_USER: username\n  DB_PASSWORD: password")
	whole := source(t, p, "path: "+path)
	start := time.Now()
	res, err := p.Fetch(context.Background(), []*providers.Source{byMap, whole})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	user := values(res[0])["username"]
	if user == "" || values(res[1])["username"] != user || values(res[0])["password"] == "" {
		t.Fatalf("two sources of one path got different or empty credentials")
	}
	if res[0].Version != "lease-1" {
		t.Errorf("Version = %q, want lease-1", res[0].Version)
	}
	if d := res[0].Expires.Sub(start); d < 50*time.Second || d > 70*time.Second {
		t.Errorf("Expires %v after the read, want about the 60s lease", d)
	}
	if !roleExists(t, pg, user) {
		t.Fatal("the database role Vault reported does not exist")
	}
	first := p.leases[path].id

	if !p.HoldsLeases() {
		t.Error("HoldsLeases = false with a database lease")
	}

	// Not due: no renewal.
	if ren := renew(t, p); ren.Next.Sub(start) < 30*time.Second || ren.Next.Sub(start) > 50*time.Second {
		t.Errorf("Next %v after the read, want about two thirds of the 60s lease", ren.Next.Sub(start))
	}
	info, err := v.Root.Sys().Lookup(first)
	if err != nil {
		t.Fatal(err)
	}
	if info.Data["last_renewal"] != nil {
		t.Fatal("renewed before two thirds of the TTL")
	}

	// Past two thirds: Versions is a query and renews nothing; Renew
	// renews, and the label stays.
	offset = 45 * time.Second
	if got := versionsOf(t, p, whole); got[0] != "lease-1" {
		t.Errorf("Versions = %q, want lease-1", got[0])
	}
	if info, err := v.Root.Sys().Lookup(first); err != nil || info.Data["last_renewal"] != nil {
		t.Fatalf("Versions renewed the lease (%v)", err)
	}
	if ren := renew(t, p); len(ren.Expiring) != 0 {
		t.Errorf("a full renewal left %v expiring", ren.Expiring)
	}
	if got := versionsOf(t, p, whole); got[0] != "lease-1" {
		t.Errorf("after renewal, Versions = %q, want lease-1 unchanged", got[0])
	}
	info, err = v.Root.Sys().Lookup(first)
	if err != nil {
		t.Fatal(err)
	}
	if info.Data["last_renewal"] == nil {
		t.Error("the lease was not renewed past two thirds of its TTL")
	}

	// A re-fetch while the lease is healthy keeps the credentials.
	again := fetchOne(t, p, "path: "+path)
	if values(again)["username"] != user || again.Version != "lease-1" {
		t.Error("a re-fetch replaced healthy credentials")
	}

	// The lease is revoked behind our back: renewal fails, the lease is
	// reported expiring, the label moves on, and the next fetch reads new
	// credentials with that label.
	if err := v.Root.Sys().Revoke(first); err != nil {
		t.Fatal(err)
	}
	offset = 100 * time.Second
	if ren := renew(t, p); len(ren.Expiring) != 1 || ren.Expiring[0].Ref != path {
		t.Errorf("after a refused renewal, Expiring = %v, want %s", ren.Expiring, path)
	}
	if got := versionsOf(t, p, whole); got[0] != "lease-2" {
		t.Fatalf("after a failed renewal, Versions = %q, want lease-2", got[0])
	}
	rotated := fetchOne(t, p, "path: "+path)
	newUser := values(rotated)["username"]
	if rotated.Err != nil || newUser == "" || newUser == user || rotated.Version != "lease-2" {
		t.Fatalf("rotation: err %v, version %q, new user differs: %v", rotated.Err, rotated.Version, newUser != user)
	}
	if got := versionsOf(t, p, whole); got[0] != "lease-2" {
		t.Errorf("after the rotation, Versions = %q, want lease-2 (no second change)", got[0])
	}
	second := p.leases[path].id

	// Close revokes: Vault forgets the lease and PostgreSQL the role.
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if leaseAlive(v, second) {
		t.Error("the lease is still alive after Close")
	}
	if roleExists(t, pg, newUser) {
		t.Error("the database role still exists after Close")
	}
}

func TestDatabaseLeaseKeptWithoutRevokeOnExit(t *testing.T) {
	v := needVault(t)
	pg := needPostgres(t)
	mount := databaseSetup(t, v, pg)
	p := newProvider(t, "revoke_on_exit: false", newEnv(map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": vaulttest.RootToken}))
	r := fetchOne(t, p, "path: "+mount+"/creds/app")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	id := p.leases[mount+"/creds/app"].id
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !leaseAlive(v, id) || !roleExists(t, pg, values(r)["username"]) {
		t.Error("revoke_on_exit: false, but the lease was revoked")
	}
	if err := v.Root.Sys().Revoke(id); err != nil {
		t.Fatal(err)
	}
}

func TestVersionOnLeasedPathIsAnError(t *testing.T) {
	v := needVault(t)
	pg := needPostgres(t)
	mount := databaseSetup(t, v, pg)
	p := rootProvider(t, v)
	r := fetchOne(t, p, "path: "+mount+"/creds/app\nversion: 2")
	if r.Err == nil {
		t.Fatal("version: on a database path was accepted")
	}
}

// TestLeaseOfLoginTokenRevokedWithIt: a CI role may read credentials but not
// revoke leases; Close revokes its login token, and Vault the leases with it.
func TestLeaseOfLoginTokenRevokedWithIt(t *testing.T) {
	v := needVault(t)
	pg := needPostgres(t)
	mount := databaseSetup(t, v, pg)
	policy := unique("db-reader")
	if err := v.Root.Sys().PutPolicy(policy, `path "`+mount+`/creds/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	auth := enableAuth(t, v, "approle")
	write(t, v.Root, "auth/"+auth+"/role/ci", map[string]any{"token_policies": policy, "bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.1/32", "token_bound_cidrs": "127.0.0.1/32"})
	roleID, err := v.Root.Logical().Read("auth/" + auth + "/role/ci/role-id")
	if err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, "auth:\n  method: approle\n  mount: "+auth+"\n  role_id: "+roleID.Data["role_id"].(string), newEnv(map[string]string{"VAULT_ADDR": v.Addr}))
	r := fetchOne(t, p, "path: "+mount+"/creds/app")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	id := p.leases[mount+"/creds/app"].id
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Vault revokes a token's leases in the background.
	deadline := time.Now().Add(15 * time.Second)
	for leaseAlive(v, id) || roleExists(t, pg, values(r)["username"]) {
		if time.Now().After(deadline) {
			t.Fatal("the lease outlived the login token revoked on Close")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaseExpiry is when Vault says the lease ends.
func leaseExpiry(t *testing.T, v *vaulttest.Vault, id string) time.Time {
	t.Helper()
	info, err := v.Root.Sys().Lookup(id)
	if err != nil {
		t.Fatalf("lease lookup: %v", err)
	}
	s, _ := info.Data["expire_time"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("lease expire_time %q: %v", s, err)
	}
	return at
}

// countOf counts the requests in reqs that are req.
func countOf(reqs []string, req string) int {
	n := 0
	for _, r := range reqs {
		if r == req {
			n++
		}
	}
	return n
}

// TestRenewKeepsDatabaseCredentialsWorking plays the run engine for 20 s: it
// calls Renew whenever the last Renewal.Next is due, while the child (psql
// here) logs in with leased credentials that last 6 s, read with a token of
// the user's that lasts 8 s. Without renewal both would be gone after a few
// seconds: PostgreSQL enforces the role's VALID UNTIL, and Vault revokes the
// leases of an expired token.
func TestRenewKeepsDatabaseCredentialsWorking(t *testing.T) {
	t.Parallel()
	v := needVault(t)
	pg := needPostgres(t)
	mount := databaseSetupTTL(t, v, pg, "6s", "60s")
	path := mount + "/creds/app"
	policy := unique("db-renewer")
	if err := v.Root.Sys().PutPolicy(policy, `path "`+path+`" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := v.Root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}, TTL: "8s", ExplicitMaxTTL: "120s"})
	if err != nil {
		t.Fatal(err)
	}
	cp := newCountingProxy(t, v.Addr, "/v1/"+path)
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": cp.server.URL, "VAULT_TOKEN": tok.Auth.ClientToken}))
	src := source(t, p, "path: "+path)
	start := time.Now()
	r := fetchOne(t, p, "path: "+path)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	user, password := values(r)["username"], values(r)["password"]
	if err := pg.Login(user, password); err != nil {
		t.Fatalf("the leased credentials do not work: %v", err)
	}
	if !p.HoldsLeases() {
		t.Fatal("HoldsLeases = false with a database lease")
	}
	id := p.leases[path].id

	earlyChecks := 0
	for time.Since(start) < 20*time.Second {
		// Next is after the moment Renew was asked: on a busy machine the
		// renewal point it gives may pass while Renew is still running.
		asked := time.Now()
		ren := renew(t, p)
		if len(ren.Expiring) != 0 {
			t.Fatalf("%v: expiring %v, well before the max TTL", time.Since(start), ren.Expiring)
		}
		if d := ren.Next.Sub(asked); d <= 0 || d > 6*time.Second {
			t.Fatalf("%v: Next in %v, want within the lease's 6s", time.Since(start), d)
		}
		// Called again at once, Renew has nothing to do and asks nothing
		// (unless the machine is so busy that the renewal point is near).
		if time.Until(ren.Next) > time.Second {
			earlyChecks++
			before := len(cp.requests())
			if early := renew(t, p); !early.Next.Equal(ren.Next) || len(early.Expiring) != 0 {
				t.Errorf("early Renew: Next %v, want %v", early.Next, ren.Next)
			}
			if reqs := cp.requests()[before:]; len(reqs) != 0 {
				t.Errorf("Renew with nothing due sent %v", reqs)
			}
		}
		for time.Now().Before(ren.Next) {
			if err := pg.Login(user, password); err != nil {
				t.Fatalf("%v after the read: %v", time.Since(start), err)
			}
			// Versions is a query: no request for a leased path, and the
			// lease's expiry as Vault sees it does not move.
			expiry := leaseExpiry(t, v, id)
			before := len(cp.requests())
			if got := versionsOf(t, p, src); got[0] != "lease-1" {
				t.Fatalf("Versions = %q, want lease-1", got[0])
			}
			if reqs := cp.requests()[before:]; len(reqs) != 0 {
				t.Errorf("Versions of a leased path sent %v", reqs)
			}
			if got := leaseExpiry(t, v, id); !got.Equal(expiry) {
				t.Errorf("Versions moved the lease's expiry from %v to %v", expiry, got)
			}
			time.Sleep(min(500*time.Millisecond, time.Until(ren.Next)))
		}
	}
	if earlyChecks == 0 {
		t.Error("no renewal point was more than a second away: Renew with nothing due was never checked")
	}
	if err := pg.Login(user, password); err != nil {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
	if end := leaseExpiry(t, v, id); end.Sub(start) < 20*time.Second {
		t.Errorf("the lease ends %v after the read, want it renewed past 20s", end.Sub(start))
	}
	reqs := cp.requests()
	if n := countOf(reqs, "PUT /v1/sys/leases/renew"); n < 4 {
		t.Errorf("%d lease renewals in 20s of a 6s lease, want at least 4", n)
	}
	if n := countOf(reqs, "PUT /v1/auth/token/renew-self"); n < 2 {
		t.Errorf("%d token renewals in 20s of an 8s token, want at least 2", n)
	}
	if n := countOf(reqs, "GET /v1/auth/token/lookup-self"); n != 1 {
		t.Errorf("%d token lookups, want 1 to learn its TTL", n)
	}
	if n := countOf(reqs, "GET /v1/"+path); n != 1 {
		t.Errorf("%d reads of %s, want 1: renewal keeps the credentials", n, path)
	}

	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if leaseAlive(v, id) {
		t.Error("the lease is still alive after Close")
	}
	if tokenRevoked(v, tok.Auth.ClientToken) {
		t.Error("Close revoked the token the user gave")
	}
}

// TestLeaseAtMaxTTLIsExpiring: a lease renewed up to its max TTL cannot be
// kept; Renew reports it, and the next Fetch reads new credentials.
func TestLeaseAtMaxTTLIsExpiring(t *testing.T) {
	t.Parallel()
	v := needVault(t)
	pg := needPostgres(t)
	mount := databaseSetupTTL(t, v, pg, "6s", "10s")
	path := mount + "/creds/app"
	p := rootProvider(t, v)
	src := source(t, p, "path: "+path)
	start := time.Now()
	first := fetchOne(t, p, "path: "+path)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	id := p.leases[path].id
	var ren providers.Renewal
	for {
		ren = renew(t, p)
		if len(ren.Expiring) > 0 {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("the lease was never reported expiring, past its 10s max TTL")
		}
		if got := versionsOf(t, p, src); got[0] != "lease-1" {
			t.Fatalf("before the max TTL, Versions = %q, want lease-1", got[0])
		}
		time.Sleep(time.Until(ren.Next))
	}
	if len(ren.Expiring) != 1 || ren.Expiring[0].Ref != path {
		t.Fatalf("Expiring = %v, want one entry for %s", ren.Expiring, path)
	}
	if d := ren.Expiring[0].Expires.Sub(leaseExpiry(t, v, id)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("Expires is %v off the lease's expiry in Vault", d)
	}
	if !ren.Next.IsZero() {
		t.Errorf("Next = %v with only an expiring lease and a root token, want zero", ren.Next)
	}
	if got := versionsOf(t, p, src); got[0] != "lease-2" {
		t.Errorf("Versions = %q, want lease-2, the label of the next Fetch", got[0])
	}

	second := fetchOne(t, p, "path: "+path)
	user := values(second)["username"]
	if second.Err != nil || user == values(first)["username"] || second.Version != "lease-2" {
		t.Fatalf("Fetch of an expiring lease: err %v, version %q, new user %v", second.Err, second.Version, user != values(first)["username"])
	}
	if err := pg.Login(user, values(second)["password"]); err != nil {
		t.Fatalf("the new credentials do not work: %v", err)
	}
	if ren := renew(t, p); len(ren.Expiring) != 0 || ren.Next.IsZero() {
		t.Errorf("after the new read: Expiring %v, Next %v; want none and a renewal point", ren.Expiring, ren.Next)
	}
	secondID := p.leases[path].id
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if leaseAlive(v, secondID) {
		t.Error("the new lease outlived Close")
	}
}

// TestCloseGivesBackOnlyWhatItObtained: with nothing leased, Close may run
// before the exec: it revokes an approle login token, but never a token the
// user gave. A second Close, and a Renew after it, do nothing.
func TestCloseGivesBackOnlyWhatItObtained(t *testing.T) {
	v := needVault(t)
	pg := needPostgres(t)
	kvPath := unique("close-app")
	kvPut(t, v.Root, "secret", kvPath, map[string]any{"K": "v"})
	mount := databaseSetup(t, v, pg)
	dbPath := mount + "/creds/app"

	auth := enableAuth(t, v, "approle")
	write(t, v.Root, "auth/"+auth+"/role/ci", map[string]any{"token_policies": readerPolicy(t, v, kvPath), "bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.1/32", "token_bound_cidrs": "127.0.0.1/32"})
	roleID, err := v.Root.Logical().Read("auth/" + auth + "/role/ci/role-id")
	if err != nil {
		t.Fatal(err)
	}
	machine := newProvider(t, "auth:\n  method: approle\n  mount: "+auth+"\n  role_id: "+roleID.Data["role_id"].(string), newEnv(map[string]string{"VAULT_ADDR": v.Addr}))
	if r := fetchOne(t, machine, "path: secret/"+kvPath); r.Err != nil || values(r)["K"] != "v" {
		t.Fatalf("fetch with approle: %v", r.Err)
	}
	if machine.HoldsLeases() {
		t.Error("HoldsLeases = true after reading only KV")
	}
	loginToken := machine.tok.token
	for range 2 {
		if err := machine.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if !tokenRevoked(v, loginToken) {
		t.Error("the approle login token is still valid after Close")
	}
	if ren, err := machine.Renew(context.Background()); err != nil || !ren.Next.IsZero() || len(ren.Expiring) != 0 {
		t.Errorf("Renew after Close: %+v, %v", ren, err)
	}

	child, err := v.Root.Auth().Token().Create(&api.TokenCreateRequest{TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{child.Auth.ClientToken, vaulttest.RootToken} {
		p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": token}))
		if r := fetchOne(t, p, "path: secret/"+kvPath); r.Err != nil {
			t.Fatal(r.Err)
		}
		if p.HoldsLeases() {
			t.Error("HoldsLeases = true after reading only KV")
		}
		if r := fetchOne(t, p, "path: "+dbPath); r.Err != nil {
			t.Fatal(r.Err)
		}
		if !p.HoldsLeases() {
			t.Error("HoldsLeases = false after reading a database lease")
		}
		id := p.leases[dbPath].id
		for range 2 {
			if err := p.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		if leaseAlive(v, id) {
			t.Error("the lease is still alive after Close")
		}
		if tokenRevoked(v, token) {
			t.Fatal("Close revoked the token the user gave")
		}
	}
}

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
		"default_ttl":         "60s",
		"max_ttl":             "300s",
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

	// Not due: no renewal.
	if got := versionsOf(t, p, whole); got[0] != "lease-1" {
		t.Errorf("Versions = %q, want lease-1", got[0])
	}
	info, err := v.Root.Sys().Lookup(first)
	if err != nil {
		t.Fatal(err)
	}
	if info.Data["last_renewal"] != nil {
		t.Fatal("renewed before two thirds of the TTL")
	}

	// Past two thirds: renewed, same label.
	offset = 45 * time.Second
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

	// The lease is revoked behind our back: renewal fails, the label moves
	// on, and the next fetch reads new credentials with that label.
	if err := v.Root.Sys().Revoke(first); err != nil {
		t.Fatal(err)
	}
	offset = 100 * time.Second
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

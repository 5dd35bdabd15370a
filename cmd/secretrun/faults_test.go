//go:build unix

package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/secretrun/secretrun/providers/infisical/infisicaltest"
	"github.com/secretrun/secretrun/providers/providertest/faultproxy"
)

// TestFaultScripts runs the scripts in testdata/faults: a fault proxy
// between secretrun and a real Vault, moto or the Infisical test server
// refuses, black-holes or resets connections or answers with HTTP errors,
// Vault is sealed, tokens are revoked or expire, and secretrun must keep the
// child running and deliver the next rotation promptly once the fault ends.
func TestFaultScripts(t *testing.T) {
	testscript.Run(t, serverScripts(t, "testdata/faults"))
}

// TestLeaseScripts runs the scripts in testdata/leases: leased database
// credentials and login tokens without watch, renewed while the child runs
// and given back when it ends.
func TestLeaseScripts(t *testing.T) {
	testscript.Run(t, serverScripts(t, "testdata/leases"))
}

type scriptExtrasKey struct{}

// scriptExtras are a script's fault proxies, by name, and its Infisical
// test server.
type scriptExtras struct {
	proxies   map[string]*faultproxy.Proxy
	infisical *infisicaltest.Server
}

// setupExtras gives a script its proxies and closes them at its end.
func setupExtras(env *testscript.Env) {
	x := &scriptExtras{proxies: map[string]*faultproxy.Proxy{}}
	env.Values[scriptExtrasKey{}] = x
	env.Defer(func() {
		for name, p := range x.proxies {
			if err := p.Close(); err != nil {
				env.T().Log(fmt.Sprintf("fault proxy %s: %v", name, err))
			}
		}
	})
}

func extras(ts *testscript.TestScript) *scriptExtras {
	return ts.Value(scriptExtrasKey{}).(*scriptExtras)
}

// fault NAME start TARGET puts a proxy in front of TARGET (a URL or
// host:port) and exports its URL as $FAULT_NAME; fault NAME MODE switches
// it: pass, refuse, blackhole, reset, or http CODE [RETRY-AFTER]; fault NAME
// connections N waits up to ten seconds for the proxy to have accepted N
// connections, so a script knows a request is in flight.
func cmdFault(ts *testscript.TestScript, neg bool, args []string) {
	const usage = "usage: fault NAME start TARGET | fault NAME pass|refuse|blackhole|reset|http CODE [RETRY-AFTER] | fault NAME connections N"
	if neg || len(args) < 2 {
		ts.Fatalf(usage)
	}
	x := extras(ts)
	name := args[0]
	if args[1] == "start" {
		if len(args) != 3 {
			ts.Fatalf(usage)
		}
		target := args[2]
		if u, err := url.Parse(target); err == nil && u.Host != "" {
			target = u.Host
		}
		p, err := faultproxy.New(target)
		ts.Check(err)
		x.proxies[name] = p
		ts.Setenv("FAULT_"+strings.ToUpper(name), p.URL())
		return
	}
	p := x.proxies[name]
	if p == nil {
		ts.Fatalf("no fault proxy %q; start it first", name)
	}
	if args[1] == "connections" {
		if len(args) != 3 {
			ts.Fatalf(usage)
		}
		want, err := strconv.Atoi(args[2])
		ts.Check(err)
		for deadline := time.Now().Add(10 * time.Second); p.Connections() < want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				ts.Fatalf("fault %s: %d connections after 10s, want %d", name, p.Connections(), want)
			}
		}
		return
	}
	var m faultproxy.Mode
	switch args[1] {
	case "pass":
		m = faultproxy.Pass
	case "refuse":
		m = faultproxy.Refuse
	case "blackhole":
		m = faultproxy.Blackhole
	case "reset":
		m = faultproxy.Reset
	case "http":
		if len(args) < 3 || len(args) > 4 {
			ts.Fatalf(usage)
		}
		code, err := strconv.Atoi(args[2])
		ts.Check(err)
		var retryAfter time.Duration
		if len(args) == 4 {
			retryAfter, err = time.ParseDuration(args[3])
			ts.Check(err)
		}
		m = faultproxy.HTTPStatus(code, retryAfter)
	default:
		ts.Fatalf(usage)
	}
	p.Set(m)
	ts.Logf("fault %s: %v", name, m)
}

// The Infisical project and machine identity of a script's test server.
const (
	infisicalProject      = "0f6b3c6e-0000-4000-8000-00000000beef"
	infisicalEnvironment  = "dev"
	infisicalClientID     = "client-id-1"
	infisicalClientSecret = "client-secret-1"
)

// infisical start|set KEY VALUE|expire-tokens|revoke-tokens drives the
// script's Infisical test server: start it (site URL, project and machine
// identity in $INFISICAL_SITE_URL, $INFISICAL_PROJECT_ID,
// $INFISICAL_CLIENT_ID and $INFISICAL_CLIENT_SECRET), write a secret in
// environment dev at /, or make every access token issued so far expired or
// revoked.
func cmdInfisical(ts *testscript.TestScript, neg bool, args []string, t *testing.T) {
	const usage = "usage: infisical start|set KEY VALUE|expire-tokens|revoke-tokens"
	if neg || len(args) < 1 {
		ts.Fatalf(usage)
	}
	x := extras(ts)
	if args[0] != "start" && x.infisical == nil {
		ts.Fatalf("infisical is not started")
	}
	switch args[0] {
	case "start":
		// The server lives until the test ends; each script has its own.
		s := infisicaltest.New(t)
		s.AddProject(infisicalProject, "app", infisicalEnvironment)
		s.AddIdentity(infisicalClientID, infisicalClientSecret, infisicalProject)
		x.infisical = s
		ts.Setenv("INFISICAL_SITE_URL", s.URL)
		ts.Setenv("INFISICAL_PROJECT_ID", infisicalProject)
		ts.Setenv("INFISICAL_CLIENT_ID", infisicalClientID)
		ts.Setenv("INFISICAL_CLIENT_SECRET", infisicalClientSecret)
	case "set":
		if len(args) != 3 {
			ts.Fatalf(usage)
		}
		x.infisical.SetSecret(infisicalProject, infisicalEnvironment, "/", args[1], args[2])
	case "expire-tokens":
		x.infisical.ExpireTokens()
	case "revoke-tokens":
		x.infisical.RevokeTokens()
	default:
		ts.Fatalf(usage)
	}
}

// appPolicy is what the application's AppRole and user tokens may do: read
// its secrets and database credentials, and renew and revoke their leases.
const appPolicy = `
path "secret/*" { capabilities = ["read", "list"] }
path "database/creds/app" { capabilities = ["read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`

// vaultauth approle TTL|token VAR|[!] valid VAR|logins N|revoke-logins sets
// up and inspects the script Vault's tokens, with the root token:
//   - approle TTL: an AppRole `app` whose tokens live TTL, its role and
//     secret ids in $ROLE_ID and $SECRET_ID;
//   - token VAR: a token of the app policy in $VAR, as a user would get
//     from `vault login`;
//   - valid VAR: the token in $VAR is still valid;
//   - logins N: N tokens from AppRole logins are alive;
//   - revoke-logins: revoke every token an AppRole login created.
func cmdVaultAuth(ts *testscript.TestScript, neg bool, args []string) {
	const usage = "usage: vaultauth approle TTL|token VAR|valid VAR|logins N|revoke-logins"
	if len(args) < 1 || (neg && args[0] != "valid") {
		ts.Fatalf(usage)
	}
	c, err := ts.Value(vaultKey{}).(*scriptVault).client()
	ts.Check(err)
	ctx := context.Background()
	switch {
	case args[0] == "approle" && len(args) == 2:
		ts.Check(c.Sys().PutPolicyWithContext(ctx, "app", appPolicy))
		mounts, err := c.Sys().ListAuthWithContext(ctx)
		ts.Check(err)
		if _, ok := mounts["approle/"]; !ok {
			ts.Check(c.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}))
		}
		_, err = c.Logical().WriteWithContext(ctx, "auth/approle/role/app", map[string]any{
			"token_policies": "app", "token_ttl": args[1], "token_max_ttl": "1h",
		})
		ts.Check(err)
		s, err := c.Logical().ReadWithContext(ctx, "auth/approle/role/app/role-id")
		ts.Check(err)
		ts.Setenv("ROLE_ID", s.Data["role_id"].(string))
		s, err = c.Logical().WriteWithContext(ctx, "auth/approle/role/app/secret-id", nil)
		ts.Check(err)
		ts.Setenv("SECRET_ID", s.Data["secret_id"].(string))
	case args[0] == "token" && len(args) == 2:
		ts.Check(c.Sys().PutPolicyWithContext(ctx, "app", appPolicy))
		s, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"app"}, TTL: "1h"})
		ts.Check(err)
		ts.Setenv(args[1], s.Auth.ClientToken)
	case args[0] == "valid" && len(args) == 2:
		_, err := c.Auth().Token().LookupWithContext(ctx, ts.Getenv(args[1]))
		switch {
		case err != nil && !neg:
			ts.Fatalf("the token in $%s is not valid: %v", args[1], err)
		case err == nil && neg:
			ts.Fatalf("the token in $%s is still valid", args[1])
		}
	case args[0] == "logins" && len(args) == 2:
		want, err := strconv.Atoi(args[1])
		ts.Check(err)
		if got := approleTokens(ts, c); got != want {
			ts.Fatalf("%d tokens from AppRole logins are alive, want %d", got, want)
		}
	case args[0] == "revoke-logins" && len(args) == 1:
		_, err := c.Logical().WriteWithContext(ctx, "sys/leases/revoke-prefix/auth/approle/login", nil)
		ts.Check(err)
	default:
		ts.Fatalf(usage)
	}
}

// approleTokens counts the live tokens that AppRole logins created.
func approleTokens(ts *testscript.TestScript, c *api.Client) int {
	ctx := context.Background()
	s, err := c.Logical().ListWithContext(ctx, "auth/token/accessors")
	ts.Check(err)
	if s == nil {
		return 0
	}
	keys, _ := s.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		tok, err := c.Auth().Token().LookupAccessorWithContext(ctx, k.(string))
		if err != nil {
			continue // revoked since the list was taken
		}
		if path, _ := tok.Data["path"].(string); path == "auth/approle/login" {
			n++
		}
	}
	return n
}

// pg SQL runs SQL as postgres in the PostgreSQL that `vault database`
// started and prints the result.
func cmdPostgres(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pg SQL")
	}
	v := ts.Value(vaultKey{}).(*scriptVault)
	if v.pg == nil {
		ts.Fatalf("no PostgreSQL: run `vault database TTL MAXTTL` first")
	}
	out, err := v.pg.Query(args[0])
	ts.Check(err)
	fmt.Fprintln(ts.Stdout(), out)
}

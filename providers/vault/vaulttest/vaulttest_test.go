package vaulttest

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestStartPostgres(t *testing.T) {
	pg, stop, err := StartPostgres()
	Need(t, "PostgreSQL", err)
	defer stop()
	out, err := pg.Query("SELECT 40 + 2")
	if err != nil || out != "42" {
		t.Fatalf("query: %q %v", out, err)
	}
}

func TestPostgresAsksOtherRolesForTheirPassword(t *testing.T) {
	pg, stop, err := StartPostgres()
	Need(t, "PostgreSQL", err)
	defer stop()
	if _, err := pg.Query(`CREATE ROLE app WITH LOGIN PASSWORD 'right'`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Login("app", "right"); err != nil {
		t.Fatalf("login with the password: %v", err)
	}
	if err := pg.Login("app", "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if _, err := pg.Query(`ALTER ROLE app VALID UNTIL '2000-01-01'`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Login("app", "right"); err == nil {
		t.Fatal("login after VALID UNTIL succeeded")
	}
}

func TestStartVaultTLS(t *testing.T) {
	v, stop, err := StartVaultTLS()
	Need(t, "Vault", err)
	defer stop()
	if !strings.HasPrefix(v.Addr, "https://127.0.0.1:") {
		t.Fatalf("Addr = %q, want https on loopback", v.Addr)
	}
	if _, err := v.Root.KVv2("secret").Put(context.Background(), "tls-check", map[string]any{"k": "v"}); err != nil {
		t.Fatalf("write over TLS with the server's CA: %v", err)
	}
	// Without the CA the certificate is not trusted: the server really
	// speaks TLS with a certificate of its own.
	resp, err := http.Get(v.Addr + "/v1/sys/health")
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET without the dev server's CA succeeded")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("GET without the CA: %v, want an unknown authority", err)
	}
}

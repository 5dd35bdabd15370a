package vaulttest

import "testing"

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

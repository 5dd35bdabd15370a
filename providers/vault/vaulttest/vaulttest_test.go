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

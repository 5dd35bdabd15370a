package awsssm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
)

func named(pairs ...string) []providers.NamedSecret {
	var out []providers.NamedSecret
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, providers.NamedSecret{Name: pairs[i], Value: providers.NewSecret(pairs[i+1])})
	}
	return out
}

// A parameter that appears between Existing and Write (another import, a
// colleague) is refused by Parameter Store itself, and Write says what it
// had stored by then.
func TestWriteStopsAtAParameterThatExists(t *testing.T) {
	srv := moto.Get(t)
	rec := mototest.NewRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	s := src(t, p, "path: /write/race")
	srv.PutParameter(t, "/write/race/B", "someone else's", secure)

	written, err := p.Write(context.Background(), s, named("A", "value-a", "B", "value-b", "C", "value-c"), false)
	if !errors.Is(err, providers.ErrExists) || !strings.Contains(err.Error(), "/write/race/B") {
		t.Fatalf("Write = %v, want ErrExists naming /write/race/B", err)
	}
	if !slices.Equal(written, []string{"A"}) {
		t.Fatalf("written = %v, want [A]", written)
	}
	if got := values(t, fetch(t, p, s)[0]); got["A"] != "value-a" || got["B"] != "someone else's" || got["C"] != "" {
		t.Fatalf("after the refusal the path holds %v", keysOf(got))
	}

	written, err = p.Write(context.Background(), s, named("A", "value-a", "B", "value-b", "C", "value-c"), true)
	if err != nil || len(written) != 3 {
		t.Fatalf("Write with replace = %v, %v", written, err)
	}
	if got := values(t, fetch(t, p, s)[0]); got["B"] != "value-b" || got["C"] != "value-c" {
		t.Fatal("replace did not store every value")
	}
}

// Values Parameter Store would refuse stop the write before the first call.
func TestWriteChecksEveryValueFirst(t *testing.T) {
	srv := moto.Get(t)
	rec := mototest.NewRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	s := src(t, p, "path: /write/checks")
	for _, tc := range []struct{ name, value, want string }{
		{"empty", "", "EMPTY is empty"},
		{"too large", strings.Repeat("x", 4097), "EMPTY holds 4097 bytes, more than the 4096 of a Standard parameter"},
	} {
		written, err := p.Write(context.Background(), s, named("A", "fine", "EMPTY", tc.value), false)
		if err == nil || !strings.Contains(err.Error(), tc.want) || written != nil {
			t.Errorf("%s: Write = %v, %v; want %q and nothing written", tc.name, written, err, tc.want)
		}
	}
	if n := rec.Count("PutParameter"); n != 0 {
		t.Fatalf("%d PutParameter calls, want none", n)
	}
}

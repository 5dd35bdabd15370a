package vault

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers"
)

func named(pairs ...string) []providers.NamedSecret {
	var out []providers.NamedSecret
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, providers.NamedSecret{Name: pairs[i], Value: providers.NewSecret(pairs[i+1])})
	}
	return out
}

// On KV v2 a write that must not replace sends cas=0, so a secret created
// since Existing looked is refused by Vault itself.
func TestWriteKV2RefusesAnExistingSecret(t *testing.T) {
	v := needVault(t)
	p := rootProvider(t, v)
	path := unique("write-kv2")
	s := source(t, p, "path: secret/"+path)
	ctx := context.Background()

	if found, err := p.Existing(ctx, s, nil); err != nil || found != nil {
		t.Fatalf("Existing before any write = %v, %v", found, err)
	}
	kvPut(t, v.Root, "secret", path, map[string]any{"OTHER": "theirs"})
	written, err := p.Write(ctx, s, named("A", "mine"), false)
	if !errors.Is(err, providers.ErrExists) || written != nil {
		t.Fatalf("Write = %v, %v; want ErrExists and nothing written", written, err)
	}
	if got := values(fetchOne(t, p, "path: secret/"+path)); got["OTHER"] != "theirs" || got["A"] != "" {
		t.Fatalf("the refused write changed the secret: %v", got)
	}

	written, err = p.Write(ctx, s, named("A", "mine", "B", "also mine"), true)
	if err != nil || !slices.Equal(written, []string{"A", "B"}) {
		t.Fatalf("Write with replace = %v, %v", written, err)
	}
	res := fetchOne(t, p, "path: secret/"+path)
	if got := values(res); got["A"] != "mine" || got["B"] != "also mine" || got["OTHER"] != "" || res.Version != "2" {
		t.Fatalf("after replace: version %s, fields %v", res.Version, got)
	}

	// A deleted latest version still counts: the next write follows it.
	if err := v.Root.KVv2("secret").Delete(ctx, path); err != nil {
		t.Fatal(err)
	}
	found, err := p.Existing(ctx, s, nil)
	if err != nil || len(found) != 1 || !strings.Contains(found[0], "version 2") {
		t.Fatalf("Existing after delete = %v, %v", found, err)
	}
}

func TestWriteKV1(t *testing.T) {
	v := needVault(t)
	mount := unique("kv1w")
	if err := v.Root.Sys().Mount(mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	p := rootProvider(t, v)
	s := source(t, p, "path: "+mount+"/app")
	ctx := context.Background()
	if _, err := p.Write(ctx, s, named("TOKEN", "t-1", "URL", "u-1"), false); err != nil {
		t.Fatal(err)
	}
	if got := values(fetchOne(t, p, "path: "+mount+"/app")); got["TOKEN"] != "t-1" || got["URL"] != "u-1" {
		t.Fatalf("read back %v", got)
	}
	found, err := p.Existing(ctx, s, nil)
	if err != nil || len(found) != 1 || !strings.Contains(found[0], "KV v1 mount "+mount+"/") {
		t.Fatalf("Existing = %v, %v", found, err)
	}
}

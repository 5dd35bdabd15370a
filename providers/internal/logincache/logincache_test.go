package logincache

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

var id = Identity{Type: "vault", Address: "http://127.0.0.1:8200", Parts: []string{"", "approle", "approle", "role-id-1"}}

func token(value string, expires time.Time) Token {
	return Token{Value: providers.NewSecret(value), Expires: expires, TTL: time.Hour, Policies: []string{"app"}}
}

func TestLoadTakesOnlyWhatTheSameCredentialStored(t *testing.T) {
	kr := providertest.NewKeyring()
	now := time.Now()
	c := New(kr, id, Digest("secret_id", "s1"))
	if _, ok := c.Load(now); ok {
		t.Fatal("a token loaded from an empty keyring")
	}
	if kept, err := c.Store(token("hvs.one", now.Add(time.Hour))); !kept || err != nil {
		t.Fatalf("Store: %v %v", kept, err)
	}
	got, ok := New(kr, id, Digest("secret_id", "s1")).Load(now)
	if !ok || got.Value.Reveal() != "hvs.one" || !got.Expires.Equal(now.Add(time.Hour)) || got.TTL != time.Hour || got.Policies[0] != "app" {
		t.Fatalf("Load: %v %+v", ok, got)
	}
	if _, ok := New(kr, id, Digest("secret_id", "s2")).Load(now); ok {
		t.Error("a token stored for one secret id loaded for another")
	}
	other := id
	other.Parts = []string{"", "approle", "approle", "role-id-2"}
	if _, ok := New(kr, other, Digest("secret_id", "s1")).Load(now); ok {
		t.Error("a token stored for one role loaded for another")
	}
}

// A token is used only with more than the margin of its TTL left: a
// minute, or a tenth of the TTL when that is longer.
func TestLoadMargin(t *testing.T) {
	if Margin(time.Hour) != 6*time.Minute || Margin(5*time.Minute) != time.Minute {
		t.Fatalf("Margin(1h) = %v, Margin(5m) = %v", Margin(time.Hour), Margin(5*time.Minute))
	}
	kr := providertest.NewKeyring()
	now := time.Now()
	c := New(kr, id, Digest("x"))
	if _, err := c.Store(token("hvs.t", now.Add(10*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Load(now); !ok {
		t.Error("10 minutes left of 1h: not loaded")
	}
	if _, ok := c.Load(now.Add(5 * time.Minute)); ok {
		t.Error("5 minutes left of 1h: loaded")
	}
	// A token renewable for 1h but 5 minutes from its max TTL ends then.
	capped := token("hvs.capped", now.Add(time.Hour))
	capped.Issued, capped.MaxTTL = now.Add(-55*time.Minute), time.Hour
	if _, err := c.Store(capped); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Load(now); ok {
		t.Error("5 minutes left before the max TTL: loaded")
	}
	if kept, _ := c.Store(token("hvs.forever", time.Time{})); kept {
		t.Error("a token without expiry was kept")
	}
}

func TestDropRemovesOnlyTheRejectedToken(t *testing.T) {
	kr := providertest.NewKeyring()
	now := time.Now()
	c := New(kr, id, Digest("x"))
	if _, err := c.Store(token("hvs.new", now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	c.Drop(providers.NewSecret("hvs.old"))
	if _, ok := c.Load(now); !ok {
		t.Fatal("dropping another token removed the item")
	}
	c.Drop(providers.NewSecret("hvs.new"))
	if _, ok := c.Load(now); ok {
		t.Fatal("the dropped token is still loaded")
	}
	if _, err := Forget(kr, id); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Forget after Drop: %v", err)
	}
}

// What is not an item of ours is no cached token, and is never shown.
func TestLoadIgnoresForeignItems(t *testing.T) {
	kr := providertest.NewKeyring()
	c := New(kr, id, Digest("x"))
	for _, v := range []string{"not json with a secret-looking value", `{"v":2,"token":"hvs.t"}`, `{"v":1}`} {
		if err := kr.Set(Service, id.key(), providers.NewSecret(v)); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Load(time.Now()); ok {
			t.Errorf("%q loaded", v)
		}
	}
	if !strings.HasPrefix(id.key(), "vault http://127.0.0.1:8200 ") || strings.Contains(id.key(), "role-id-1") {
		t.Errorf("key %q: want the type and address readable and the role id digested", id.key())
	}
}

// A keyring that cannot be read is not written either: the run logs in
// as it would without the cache, without waiting on it twice.
func TestUnreachableKeyringIsNotWritten(t *testing.T) {
	kr := &downKeyring{}
	c := New(kr, id, Digest("x"))
	if _, ok := c.Load(time.Now()); ok {
		t.Fatal("loaded from a keyring that is down")
	}
	if kept, err := c.Store(token("hvs.t", time.Now().Add(time.Hour))); kept || err != nil || kr.sets != 0 {
		t.Errorf("Store on a keyring that is down: kept %v, err %v, %d writes", kept, err, kr.sets)
	}
	if New(nil, id, "") != nil {
		t.Error("a cache without a keyring")
	}
}

type downKeyring struct{ sets int }

func (k *downKeyring) Get(string, string) (providers.Secret, error) {
	return providers.Secret{}, providers.ErrUnavailable
}
func (k *downKeyring) Set(string, string, providers.Secret) error { k.sets++; return nil }
func (k *downKeyring) Delete(string, string) error                { return nil }

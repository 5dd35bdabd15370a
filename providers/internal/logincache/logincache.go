// Package logincache keeps the token a machine login returns (a Vault
// AppRole, JWT or Kubernetes login, an Infisical universal or Kubernetes
// auth login) in the OS keyring between runs, for provider blocks whose
// auth says `cache: keyring`. A run that finds a token with enough life
// left uses it and skips the login, and leaves it unrevoked on exit for the
// next run.
//
// One keyring item holds one login identity: the backend, its address and
// whatever decides which identity logs in (namespace, mount, role...). The
// item also holds a digest of the credential the token was obtained with,
// so a rotated secret id or a new JWT never gets the old token, and the
// next login simply overwrites the item instead of leaving one behind per
// credential.
package logincache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// Service is the keyring service under which cached login tokens are
// stored, apart from the credentials `secretrun login` stores.
const Service = "secretrun-login-cache"

// Setting values of `cache:`.
const (
	Keyring = "keyring"
	None    = "none"
)

// Enabled reads a `cache:` setting: "keyring" turns the cache on, "none"
// or nothing leaves it off.
func Enabled(setting string) (bool, error) {
	switch setting {
	case Keyring:
		return true, nil
	case "", None:
		return false, nil
	}
	return false, fmt.Errorf("cache %q is not %s or %s", setting, Keyring, None)
}

// minMargin and marginShare set how much life a cached token must have
// left to be used: the larger of a minute and a tenth of the TTL it was
// issued with. A run needs its token for its start (a few requests) and,
// when it supervises, until the first renewal at about two thirds of the
// TTL; the tenth keeps a run from starting on a token that its first
// renewal could not save, the minute covers a slow start and a clock that
// steps while the item sits in the keyring.
const (
	minMargin   = time.Minute
	marginShare = 10
)

// Margin is the life a token issued for ttl must have left to be reused.
func Margin(ttl time.Duration) time.Duration {
	return max(minMargin, ttl/marginShare)
}

// Identity is who logs in where. Two provider blocks with the same
// Identity share one cached token, whatever their names.
type Identity struct {
	// Type is the provider type: "vault", "infisical".
	Type string
	// Address is the backend's URL.
	Address string
	// Parts is everything else that decides the identity, in a fixed
	// order: namespace, auth mount and method, role id or identity id.
	Parts []string
}

// key names the keyring item. The type and address are readable, for a
// user looking through the keyring; the rest is digested, as a role id is
// not for everyone's eyes, and item attributes are readable even in a
// locked keyring.
func (id Identity) key() string {
	return id.Type + " " + id.Address + " " + Digest(id.Parts...)[:32]
}

// Digest is the hex SHA-256 of parts, each length-prefixed so that no two
// different lists digest alike. It stands for a credential in an item: a
// changed credential gives a different digest, and the digest does not
// give the credential away.
func Digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p)) + ":"))
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Token is a login's result as the cache keeps it.
type Token struct {
	Value providers.Secret
	// Expires is when the token ends.
	Expires time.Time
	// TTL is the lifetime it was issued (or last renewed) with.
	TTL time.Duration
	// Renewable tells whether the backend would extend it.
	Renewable bool
	// Policies are the token's policies, for messages.
	Policies []string
	// Issued and MaxTTL bound a token that renewals cannot extend past
	// Issued+MaxTTL (Infisical's access tokens); zero when unknown or
	// unbounded.
	Issued time.Time
	MaxTTL time.Duration
}

// end is when t stops being valid whatever is done.
func (t Token) end() time.Time {
	if t.MaxTTL > 0 && !t.Issued.IsZero() {
		if limit := t.Issued.Add(t.MaxTTL); limit.Before(t.Expires) {
			return limit
		}
	}
	return t.Expires
}

// item is the JSON a keyring item holds.
type item struct {
	Version    int       `json:"v"`
	Credential string    `json:"credential"`
	Token      string    `json:"token"`
	Expires    time.Time `json:"expires"`
	TTL        int64     `json:"ttl_seconds"`
	Renewable  bool      `json:"renewable,omitempty"`
	Policies   []string  `json:"policies,omitempty"`
	Issued     time.Time `json:"issued,omitzero"`
	MaxTTL     int64     `json:"max_ttl_seconds,omitempty"`
}

const itemVersion = 1

// Cache is the cached login of one identity and credential. A nil *Cache,
// as New returns when there is no keyring, caches nothing.
type Cache struct {
	keyring    providers.Keyring
	key        string
	credential string
	// unreachable is set when the keyring could not be read: writing to it
	// would only wait on it again.
	unreachable bool
}

// New is the cache of id's login with the credential whose Digest is
// credential; nil when kr is nil.
func New(kr providers.Keyring, id Identity, credential string) *Cache {
	if kr == nil {
		return nil
	}
	return &Cache{keyring: kr, key: id.key(), credential: credential}
}

// Load returns the cached token when there is one for this credential with
// more than Margin of its TTL left at now. A keyring that cannot be read,
// or an item that is not one of ours, is no cached token: the caller logs
// in as it would without the cache.
func (c *Cache) Load(now time.Time) (Token, bool) {
	if c == nil {
		return Token{}, false
	}
	s, err := c.get()
	if err != nil {
		c.unreachable = !errors.Is(err, providers.ErrNotFound)
		return Token{}, false
	}
	var it item
	if json.Unmarshal([]byte(s.Reveal()), &it) != nil || it.Version != itemVersion || it.Token == "" || it.Credential != c.credential {
		return Token{}, false
	}
	t := Token{
		Value:     providers.NewSecret(it.Token),
		Expires:   it.Expires,
		TTL:       time.Duration(it.TTL) * time.Second,
		Renewable: it.Renewable,
		Policies:  it.Policies,
		Issued:    it.Issued,
		MaxTTL:    time.Duration(it.MaxTTL) * time.Second,
	}
	if !Usable(t, now) {
		return Token{}, false
	}
	return t, true
}

// batchGetter is the OS keyring's batch read, which on Linux takes fewer
// Secret Service calls for one item than Get: the read is on the start-up
// path of every run.
type batchGetter interface {
	GetMany(ctx context.Context, service string, keys []string) (map[string]providers.Secret, error)
}

func (c *Cache) get() (providers.Secret, error) {
	bg, ok := c.keyring.(batchGetter)
	if !ok {
		return c.keyring.Get(Service, c.key)
	}
	got, err := bg.GetMany(context.Background(), Service, []string{c.key})
	if err != nil {
		return providers.Secret{}, err
	}
	s, ok := got[c.key]
	if !ok {
		return providers.Secret{}, providers.ErrNotFound
	}
	return s, nil
}

// Usable reports whether t may be used at now: it expires, and more than
// Margin of its TTL is left before it expires or reaches its max TTL.
func Usable(t Token, now time.Time) bool {
	return !t.Expires.IsZero() && t.TTL > 0 && t.end().Sub(now) > Margin(t.TTL)
}

// Store keeps t for the next runs, replacing what the item held. It
// reports whether t is now in the keyring: a token that never expires is
// not kept (it would outlive every run and every credential), nor is
// anything when the keyring could not be read. An error is the keyring's
// refusal, worth a warning: the token is then not cached.
func (c *Cache) Store(t Token) (bool, error) {
	if c == nil || c.unreachable || t.Expires.IsZero() || t.TTL <= 0 {
		return false, nil
	}
	b, err := json.Marshal(item{
		Version:    itemVersion,
		Credential: c.credential,
		Token:      t.Value.Reveal(),
		Expires:    t.Expires.UTC(),
		TTL:        int64(t.TTL / time.Second),
		Renewable:  t.Renewable,
		Policies:   t.Policies,
		Issued:     t.Issued.UTC(),
		MaxTTL:     int64(t.MaxTTL / time.Second),
	})
	if err != nil {
		return false, err
	}
	if err := c.keyring.Set(Service, c.key, providers.NewSecret(string(b))); err != nil {
		return false, err
	}
	return true, nil
}

// Drop removes the item if it still holds token: a token the backend
// refused must not be offered to the next run, but another run may have
// stored a good one meanwhile.
func (c *Cache) Drop(token providers.Secret) {
	if c == nil {
		return
	}
	s, err := c.keyring.Get(Service, c.key)
	if err != nil {
		return
	}
	var it item
	if json.Unmarshal([]byte(s.Reveal()), &it) == nil && !providers.NewSecret(it.Token).Equal(token) {
		return
	}
	_ = c.keyring.Delete(Service, c.key)
}

// Forget removes id's cached token, whatever credential it was obtained
// with, and returns it so that the caller can revoke it. It wraps
// providers.ErrNotFound when nothing was cached.
func Forget(kr providers.Keyring, id Identity) (providers.Secret, error) {
	key := id.key()
	s, err := kr.Get(Service, key)
	if err != nil {
		return providers.Secret{}, err
	}
	var it item
	_ = json.Unmarshal([]byte(s.Reveal()), &it)
	if err := kr.Delete(Service, key); err != nil {
		return providers.Secret{}, err
	}
	return providers.NewSecret(it.Token), nil
}

//go:build linux

package keyring

import (
	"context"
	"errors"
	"fmt"

	dbus "github.com/godbus/dbus/v5"
	gokeyring "github.com/zalando/go-keyring"
	ss "github.com/zalando/go-keyring/secret_service"

	"github.com/secretrun/secretrun/providers"
)

// The Secret Service names that go-keyring's secret_service package keeps
// unexported.
const (
	ssName       = "org.freedesktop.secrets"
	ssPath       = "/org/freedesktop/secrets"
	ssService    = "org.freedesktop.Secret.Service"
	ssCollection = "org.freedesktop.Secret.Collection"
	ssSession    = "org.freedesktop.Secret.Session"
)

// searchWindow bounds the searches in flight at once: a bus daemon may limit
// the replies a connection awaits (the system bus's default is 128), and the
// keyring daemon answers one call at a time anyway.
const searchWindow = 64

// GetMany reads the items of service named by keys, as Get would read each
// one, in a few Secret Service calls rather than about six per key: one
// session, one unlock of the collection, the searches sent back to back and
// one GetSecrets for every item found. The map holds the items found;
// missing ones are absent.
func (OS) GetMany(ctx context.Context, service string, keys []string) (map[string]providers.Secret, error) {
	got, err := getMany(ctx, service, keys)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: OS keyring: %v", providers.ErrUnavailable, err)
	}
	return got, nil
}

func getMany(ctx context.Context, service string, keys []string) (map[string]providers.Secret, error) {
	svc, err := ss.NewSecretService()
	if err != nil {
		return nil, err
	}
	// The session is opened first and awaited last, so its round trip
	// overlaps the unlock and the searches.
	opening := svc.Object(ssName, ssPath).GoWithContext(ctx, ssService+".OpenSession", 0, nil, "plain", dbus.MakeVariant(""))
	var sessionPath dbus.ObjectPath
	var sessionErr error
	awaited := false
	session := func() (dbus.ObjectPath, error) {
		if !awaited {
			awaited = true
			<-opening.Done
			sessionErr = opening.Store(new(dbus.Variant), &sessionPath)
		}
		return sessionPath, sessionErr
	}
	defer func() {
		if path, err := session(); err == nil {
			closeSession(svc, path)
		}
	}()

	// The collection go-keyring writes to, unlocked once for every item
	// (go-keyring unlocks it for each Get, prompting if it must).
	collection := svc.GetLoginCollection()
	if err := svc.Unlock(collection.Path()); err != nil {
		return nil, err
	}
	paths, err := searchItems(ctx, collection, service, keys)
	if err != nil {
		return nil, err
	}
	items := make([]dbus.ObjectPath, 0, len(paths))
	for _, p := range paths {
		items = append(items, p)
	}
	var secrets map[dbus.ObjectPath]ss.Secret
	if len(items) > 0 {
		path, err := session()
		if err != nil {
			return nil, err
		}
		err = svc.Object(ssName, ssPath).CallWithContext(ctx, ssService+".GetSecrets", 0, items, path).Store(&secrets)
		var dbusErr dbus.Error
		switch {
		case errors.As(err, &dbusErr) && dbusErr.Name == "org.freedesktop.DBus.Error.UnknownMethod":
			// A Secret Service without GetSecrets: every item is read
			// the slow way below.
		case err != nil:
			return nil, err
		}
	}

	got := make(map[string]providers.Secret, len(paths))
	for key, p := range paths {
		s, ok := secrets[p]
		if !ok {
			// Locked items are left out of GetSecrets; go-keyring's Get
			// unlocks the item itself, prompting if it must.
			v, err := gokeyring.Get(service, key)
			if errors.Is(err, gokeyring.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read %s/%s: %w", service, key, err)
			}
			got[key] = providers.NewSecret(v)
			continue
		}
		got[key] = providers.NewSecret(string(s.Value))
		clear(s.Value)
	}
	return got, nil
}

// searchItems finds each key's item in collection by the attributes
// go-keyring gives it, taking the first match as go-keyring's Get does. It
// sends the searches without waiting for each reply, so their cost is one
// round trip and the daemon's work rather than one round trip each.
func searchItems(ctx context.Context, collection dbus.BusObject, service string, keys []string) (map[string]dbus.ObjectPath, error) {
	paths := make(map[string]dbus.ObjectPath, len(keys))
	calls := make([]*dbus.Call, len(keys))
	var firstErr error
	wait := func(i int) {
		c := calls[i]
		<-c.Done
		var found []dbus.ObjectPath
		if err := c.Store(&found); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		if len(found) > 0 {
			paths[keys[i]] = found[0]
		}
	}
	for i, key := range keys {
		if i >= searchWindow {
			wait(i - searchWindow)
		}
		attrs := map[string]string{"username": key, "service": service}
		calls[i] = collection.GoWithContext(ctx, ssCollection+".SearchItems", 0, nil, attrs)
	}
	for i := max(0, len(keys)-searchWindow); i < len(keys); i++ {
		wait(i)
	}
	return paths, firstErr
}

// closeSession closes a session without awaiting the reply: the daemon
// handles a connection's calls in order, and closes the session itself
// should the connection end first.
func closeSession(svc *ss.SecretService, session dbus.ObjectPath) {
	svc.Object(ssName, session).Go(ssSession+".Close", dbus.FlagNoReplyExpected, nil)
}

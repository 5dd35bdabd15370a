package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

func newTestProvider(t testing.TB, kr providers.Keyring, service string) providers.Provider {
	t.Helper()
	opts, err := config.OptionsFromYAML("service: " + service)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Type().New("local", opts, providers.Env{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func backend(t *testing.T, kr providers.Keyring, service string) providertest.Backend {
	return providertest.Backend{
		Provider: newTestProvider(t, kr, service),
		Name:     "local",
		Put: func(t *testing.T, name string, fields map[string]string) string {
			var keys []string
			for k, v := range fields {
				if err := kr.Set(service, k, providers.NewSecret(v)); err != nil {
					t.Fatalf("keyring set: %v", err)
				}
				keys = append(keys, k)
			}
			return "keys: [" + strings.Join(keys, ", ") + "]"
		},
		Missing: func(t *testing.T) string { return "keys: [NOT_IN_THE_KEYRING]" },
	}
}

func TestConformanceInMemory(t *testing.T) {
	kr := providertest.NewKeyring()
	providertest.Run(t, backend(t, kr, "conformance"))
}

// TestConformanceOSKeyring runs against the real Secret Service; the test
// command starts gnome-keyring in a private D-Bus session for it.
func TestConformanceOSKeyring(t *testing.T) {
	service := fmt.Sprintf("secretrun-test-%d", time.Now().UnixNano())
	if err := (OS{}).Set(service, "PROBE", providers.NewSecret("probe")); err != nil {
		providertest.Need(t, "the OS keyring (gnome-keyring in a D-Bus session)", err)
	}
	t.Cleanup(func() { _ = (OS{}).Delete(service, "PROBE") })
	providertest.Run(t, backend(t, OS{}, service))
}

func TestSourceNeedsKeys(t *testing.T) {
	p := newTestProvider(t, providertest.NewKeyring(), "svc")
	_, err := config.SourceFromYAML(p, "local", "prefix: X_")
	if err == nil || !strings.Contains(err.Error(), "needs `keys:`") {
		t.Fatalf("got %v, want an error asking for keys", err)
	}
}

func TestServiceRequired(t *testing.T) {
	opts, _ := config.OptionsFromYAML("{}")
	if _, err := Type().New("local", opts, providers.Env{Keyring: providertest.NewKeyring()}); err == nil || !strings.Contains(err.Error(), "service") {
		t.Fatalf("got %v, want an error naming service", err)
	}
}

func TestUnknownSettingIsRejected(t *testing.T) {
	opts, _ := config.OptionsFromYAML("service: x\nservise: y")
	_, err := Type().New("local", opts, providers.Env{Keyring: providertest.NewKeyring()})
	if err == nil || !strings.Contains(err.Error(), `unknown key "servise"`) || !strings.Contains(err.Error(), "test.yaml:2:1") {
		t.Fatalf("got %v, want unknown key at test.yaml:2:1", err)
	}
}

// batchKeyring gives the in-memory keyring the batch capability, so Fetch's
// batch path is tested on every OS.
type batchKeyring struct {
	*providertest.Keyring
	err error
}

func (k batchKeyring) GetMany(ctx context.Context, service string, keys []string) (map[string]providers.Secret, error) {
	if k.err != nil {
		return nil, k.err
	}
	got := map[string]providers.Secret{}
	for _, key := range keys {
		v, err := k.Get(service, key)
		switch {
		case errors.Is(err, providers.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			got[key] = v
		}
	}
	return got, nil
}

func TestConformanceInMemoryBatch(t *testing.T) {
	kr := batchKeyring{Keyring: providertest.NewKeyring()}
	providertest.Run(t, backend(t, kr, "conformance"))
}

func TestBatchFailureFailsEverySource(t *testing.T) {
	kr := batchKeyring{Keyring: providertest.NewKeyring(), err: fmt.Errorf("%w: OS keyring: no bus", providers.ErrUnavailable)}
	p := newTestProvider(t, kr, "svc")
	var sources []*providers.Source
	for _, yaml := range []string{"keys: [A]", "keys: [B, C]"} {
		src, err := config.SourceFromYAML(p, "local", yaml)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}
	results, err := p.Fetch(context.Background(), sources)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`keyring "local": read svc/A: backend unavailable`, `keyring "local": read svc/{B,C}: backend unavailable`} {
		got := results[i].Err
		if !errors.Is(got, providers.ErrUnavailable) || !strings.HasPrefix(fmt.Sprint(got), want) {
			t.Errorf("source %d: got %v, want %q… wrapping ErrUnavailable", i, got, want)
		}
	}
}

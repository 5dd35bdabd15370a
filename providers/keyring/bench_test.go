package keyring

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

func BenchmarkFetch10(b *testing.B)  { benchmarkFetch(b, 10) }
func BenchmarkFetch100(b *testing.B) { benchmarkFetch(b, 100) }

// benchmarkFetch measures one Fetch of a source naming n items from the
// real OS keyring, as `secretrun run` makes at start-up.
func benchmarkFetch(b *testing.B, n int) {
	service := fmt.Sprintf("secretrun-bench-%d", time.Now().UnixNano())
	keys := storeKeys(b, service, n)
	p := newTestProvider(b, OS{}, service)
	src, err := config.SourceFromYAML(p, "local", "keys: ["+strings.Join(keys, ", ")+"]")
	if err != nil {
		b.Fatal(err)
	}
	sources := []*providers.Source{src}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		results, err := p.Fetch(ctx, sources)
		if err != nil {
			b.Fatal(err)
		}
		if results[0].Err != nil {
			b.Fatal(results[0].Err)
		}
	}
}

// storeKeys stores n items KEY_000... in service with go-keyring, skipping
// the caller when there is no OS keyring, and deletes them afterwards.
func storeKeys(tb testing.TB, service string, n int) []string {
	tb.Helper()
	var keys []string
	tb.Cleanup(func() {
		for _, k := range keys {
			_ = (OS{}).Delete(service, k)
		}
	})
	for i := range n {
		k := fmt.Sprintf("KEY_%03d", i)
		err := (OS{}).Set(service, k, providers.NewSecret(valueOf(service, k)))
		if err != nil && i == 0 {
			providertest.Need(tb, "the OS keyring (gnome-keyring in a D-Bus session)", err)
		}
		if err != nil {
			tb.Fatalf("keyring set %s: %v", k, err)
		}
		keys = append(keys, k)
	}
	return keys
}

// valueOf is the value storeKeys gives an item: distinct per item, so a
// reader that mixes items up is caught.
func valueOf(service, key string) string {
	return "value-of-" + service + "/" + key
}

package providertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// Backend adapts one backend to the conformance suite.
type Backend struct {
	// Provider is the instance under test.
	Provider providers.Provider
	// Name is the instance's name, as in `from:`.
	Name string
	// Put stores a secret with these fields, replacing it if name was used
	// before, and returns the source (YAML, without `from:`) that reads all
	// of its fields. Field names are unique within one run of the suite.
	Put func(t *testing.T, name string, fields map[string]string) string
	// Missing returns a source (YAML) naming a secret that does not exist.
	Missing func(t *testing.T) string
}

// trickyValues are values that break naive quoting, encoding or parsing.
var trickyValues = map[string]string{
	"MULTILINE": "-----BEGIN KEY-----\nline two\nline three\n-----END KEY-----\n",
	"UNICODE":   "pässwörd-秘密-🔑",
	"EQUALS":    "a=b=c&d=e",
	"QUOTES":    `it's "quoted" \ back\slash`,
	"SHELL":     "$HOME `id` $(id) ; rm -rf / #",
	"SPACES":    "  leading and trailing  ",
	"LONG":      strings.Repeat("0123456789abcdef", 256),
}

// Run runs the conformance suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("FetchesEveryField", func(t *testing.T) {
		want := map[string]string{"CONF_USER": "alice", "CONF_TOKEN": "s3cr3t-token-value"}
		got := fetchOne(t, b, b.Put(t, "every-field", want))
		assertFields(t, got, want)
	})
	t.Run("ValuesRoundTrip", func(t *testing.T) {
		want := map[string]string{}
		for k, v := range trickyValues {
			want["TRICKY_"+k] = v
		}
		got := fetchOne(t, b, b.Put(t, "tricky", want))
		assertFields(t, got, want)
	})
	t.Run("ManySourcesInOrder", func(t *testing.T) {
		const n = 25
		var srcs []*providers.Source
		var wants []map[string]string
		for i := range n {
			want := map[string]string{fmt.Sprintf("MANY_%02d", i): fmt.Sprintf("value-%02d-%d", i, time.Now().UnixNano())}
			srcs = append(srcs, source(t, b, b.Put(t, fmt.Sprintf("many-%02d", i), want)))
			wants = append(wants, want)
		}
		results := fetch(t, b, srcs...)
		for i, r := range results {
			if r.Err != nil {
				t.Fatalf("source %d: %v", i, r.Err)
			}
			assertFields(t, r.Fields, wants[i])
		}
	})
	t.Run("MissingIsNotFound", func(t *testing.T) {
		secretValue := "conformance-must-not-leak-" + fmt.Sprint(time.Now().UnixNano())
		present := source(t, b, b.Put(t, "present", map[string]string{"PRESENT_VALUE": secretValue}))
		missing := source(t, b, b.Missing(t))
		results, err := b.Provider.Fetch(context.Background(), []*providers.Source{present, missing})
		if err != nil {
			t.Fatalf("a missing secret must fail its own source, not the whole fetch: %v", err)
		}
		if results[0].Err != nil {
			t.Fatalf("the present secret failed beside a missing one: %v", results[0].Err)
		}
		got := results[1].Err
		if !errors.Is(got, providers.ErrNotFound) {
			t.Fatalf("missing secret: error %v does not wrap ErrNotFound", got)
		}
		if !strings.Contains(got.Error(), missing.Ref.String()) {
			t.Errorf("error %q does not name the source %q", got, missing.Ref)
		}
		if strings.Contains(got.Error(), secretValue) {
			t.Errorf("error message contains a secret value: %q", got)
		}
	})
	t.Run("OverwriteIsSeen", func(t *testing.T) {
		first := map[string]string{"OVERWRITE_V": "first-value"}
		src := source(t, b, b.Put(t, "overwrite", first))
		assertFields(t, fetch(t, b, src)[0].Fields, first)
		versioner, canVersion := b.Provider.(providers.Versioner)
		var before []string
		if canVersion {
			before = versions(t, versioner, src)
			if again := versions(t, versioner, src); again[0] != before[0] {
				t.Errorf("version changed without a write: %q then %q", before[0], again[0])
			}
		}
		second := map[string]string{"OVERWRITE_V": "second-value"}
		b.Put(t, "overwrite", second)
		assertFields(t, fetch(t, b, src)[0].Fields, second)
		if canVersion {
			if after := versions(t, versioner, src); after[0] == before[0] {
				t.Errorf("version %q did not change after a write", after[0])
			}
		}
	})
	t.Run("CanceledContextFails", func(t *testing.T) {
		src := source(t, b, b.Put(t, "canceled", map[string]string{"CANCELED_V": "x-value"}))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		var results []providers.Result
		var err error
		go func() {
			defer close(done)
			results, err = b.Provider.Fetch(ctx, []*providers.Source{src})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Fetch with a canceled context did not return")
		}
		if err == nil && results[0].Err == nil {
			t.Fatal("Fetch with a canceled context succeeded")
		}
	})
	t.Run("ResultsPrintRedacted", func(t *testing.T) {
		value := "print-me-not-" + fmt.Sprint(time.Now().UnixNano())
		r := fetch(t, b, source(t, b, b.Put(t, "redacted", map[string]string{"REDACTED_V": value})))
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if out := fmt.Sprintf(verb, r); strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
				t.Errorf("fmt %s of a result shows the value", verb)
			}
		}
	})
}

func source(t *testing.T, b Backend, yaml string) *providers.Source {
	t.Helper()
	src, err := config.SourceFromYAML(b.Provider, b.Name, yaml)
	if err != nil {
		t.Fatalf("source %q: %v", yaml, err)
	}
	return src
}

func fetch(t *testing.T, b Backend, srcs ...*providers.Source) []providers.Result {
	t.Helper()
	results, err := b.Provider.Fetch(context.Background(), srcs)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(results) != len(srcs) {
		t.Fatalf("Fetch returned %d results for %d sources", len(results), len(srcs))
	}
	return results
}

func fetchOne(t *testing.T, b Backend, yaml string) map[string]providers.Field {
	t.Helper()
	r := fetch(t, b, source(t, b, yaml))[0]
	if r.Err != nil {
		t.Fatalf("Fetch %q: %v", yaml, r.Err)
	}
	return r.Fields
}

func versions(t *testing.T, v providers.Versioner, src *providers.Source) []string {
	t.Helper()
	out, err := v.Versions(context.Background(), []*providers.Source{src})
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	return out
}

func assertFields(t *testing.T, got map[string]providers.Field, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		names := make([]string, 0, len(got))
		for k := range got {
			names = append(names, k)
		}
		t.Fatalf("got fields %v, want %d fields", names, len(want))
	}
	for k, v := range want {
		f, ok := got[k]
		if !ok {
			t.Fatalf("field %s missing", k)
		}
		if f.Value.Reveal() != v {
			t.Errorf("field %s: got a value of %d bytes that differs from the %d bytes stored", k, f.Value.Len(), len(v))
		}
	}
}

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
)

// On Linux the OS keyring's Fetch reads in one batch, so the conformance
// suite against the real keyring goes through GetMany.
var _ batchGetter = OS{}

// TestGetManyReadsGoKeyringItems checks that the batch reader finds what
// go-keyring stored (as `secretrun keyring set` does), and reports a missing
// item among present ones by name.
func TestGetManyReadsGoKeyringItems(t *testing.T) {
	service := fmt.Sprintf("secretrun-test-many-%d", time.Now().UnixNano())
	keys := storeKeys(t, service, 50)

	got, err := (OS{}).GetMany(context.Background(), service, append(keys, "NOT_STORED"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) {
		t.Errorf("got %d items, want %d", len(got), len(keys))
	}
	for _, k := range keys {
		if v, ok := got[k]; !ok || v.Reveal() != valueOf(service, k) {
			t.Errorf("item %s: found %v, value differs from the one stored", k, ok)
		}
	}
	if _, ok := got["NOT_STORED"]; ok {
		t.Error("an item that was never stored was found")
	}

	p := newTestProvider(t, OS{}, service)
	var sources []*providers.Source
	for _, yaml := range []string{
		"keys: [" + strings.Join(keys[:25], ", ") + "]",
		"keys: [" + keys[25] + ", MISSING_AMONG_PRESENT, " + keys[26] + "]",
		"keys: [" + strings.Join(keys[25:], ", ") + "]",
	} {
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
	for _, i := range []int{0, 2} {
		if results[i].Err != nil {
			t.Fatalf("source %d: %v", i, results[i].Err)
		}
		for k, f := range results[i].Fields {
			if f.Value.Reveal() != valueOf(service, k) {
				t.Errorf("source %d: field %s differs from the value stored", i, k)
			}
		}
	}
	if n := len(results[0].Fields) + len(results[2].Fields); n != 50 {
		t.Errorf("got %d fields from the complete sources, want 50", n)
	}
	missing := results[1].Err
	if !errors.Is(missing, providers.ErrNotFound) || !strings.Contains(fmt.Sprint(missing), service+"/MISSING_AMONG_PRESENT") {
		t.Errorf("got %v, want not found naming %s/MISSING_AMONG_PRESENT", missing, service)
	}
	if results[1].Fields != nil {
		t.Errorf("a failed source has fields %d", len(results[1].Fields))
	}
}

package awsssm

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
)

// TestWatchLabels walks through what a watch sees: a new version, a new
// parameter below a path, a deletion, a re-creation. No value is decrypted
// on the way.
func TestWatchLabels(t *testing.T) {
	srv := moto.Get(t)
	v1 := fmt.Sprint(srv.PutParameter(t, "/w/app/TOKEN", "t1", secure))
	srv.PutParameter(t, "/w/app/USER", "u1", plainType)
	other1 := fmt.Sprint(srv.PutParameter(t, "/w/other", "o1", secure))
	rec := mototest.NewRecorder(t, srv.URL)
	var decrypted []string
	rec.Answer = func(op string, _ int, req *http.Request) *http.Response {
		if strings.Contains(body(req), `"WithDecryption":true`) {
			decrypted = append(decrypted, op)
		}
		return nil
	}
	p := forMoto(t, srv, rec)
	token := src(t, p, "parameter: /w/app/TOKEN\nas: TOKEN")
	path := src(t, p, "path: /w/app")
	other := src(t, p, "parameter: /w/other\nas: OTHER")
	pinned := src(t, p, "parameter: /w/app/TOKEN\nversion: "+v1+"\nas: OLD")
	missing := src(t, p, "parameter: /w/later\nas: LATER")
	all := []*providers.Source{token, path, other, pinned, missing}

	start := versionsOf(t, p, all...)
	if start[0] != v1 || start[2] != other1 || start[3] != v1 || start[4] != absent || start[1] == "" || start[1] == absent {
		t.Fatalf("labels %q", start)
	}
	if again := versionsOf(t, p, all...); !equal(again, start) {
		t.Fatalf("labels changed without a write: %q then %q", start, again)
	}
	if len(decrypted) > 0 {
		t.Errorf("Versions asked for decryption: %v", decrypted)
	}
	// The pinned TOKEN cannot share a batch with the current one.
	if n := rec.Count("GetParameters") + rec.Count("GetParametersByPath"); n != 6 {
		t.Errorf("two Versions calls made %d calls, want 6: two batches and one page each", n)
	}

	step := func(what string, changed ...int) {
		t.Helper()
		now := versionsOf(t, p, all...)
		for i := range now {
			want := false
			for _, c := range changed {
				want = want || c == i
			}
			if got := now[i] != start[i]; got != want {
				t.Errorf("%s: source %d (%s) label %q -> %q, changed %v, want %v", what, i, all[i].Ref, start[i], now[i], got, want)
			}
		}
		start = now
	}
	v2 := fmt.Sprint(srv.PutParameter(t, "/w/app/TOKEN", "t2", secure))
	step("a new version", 0, 1)
	if start[0] != v2 {
		t.Errorf("label %q, want the version number %s", start[0], v2)
	}
	srv.PutParameter(t, "/w/app/NEW", "n1", secure)
	step("a new parameter below the path", 1)
	srv.DeleteParameter(t, "/w/app/USER")
	step("a deletion below the path", 1)
	srv.DeleteParameter(t, "/w/other")
	step("a deleted parameter", 2)
	if start[2] != absent {
		t.Errorf("deleted parameter: label %q, want %q", start[2], absent)
	}
	srv.PutParameter(t, "/w/later", "l1", secure)
	step("a created parameter", 4)
	srv.DeleteParameter(t, "/w/app/TOKEN")
	step("the pinned version's parameter deleted", 0, 1, 3)
	if len(decrypted) > 0 {
		t.Errorf("Versions asked for decryption: %v", decrypted)
	}
}

func TestVersionsWhenDenied(t *testing.T) {
	srv := moto.Get(t)
	open := fmt.Sprint(srv.PutParameter(t, "/d/open", "1", plainType))
	srv.PutParameter(t, "/d/closed", "2", plainType)
	rec := mototest.NewRecorder(t, srv.URL)
	rec.Answer = deny("/d/closed")
	p := forMoto(t, srv, rec)
	labels := versionsOf(t, p, src(t, p, "parameter: /d/open\nas: A"), src(t, p, "parameter: /d/closed\nas: B"))
	// Denied: the provider cannot tell, and the watch loop compares values.
	if labels[0] != open || labels[1] != "" {
		t.Errorf("labels %q, want %s and empty", labels, open)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

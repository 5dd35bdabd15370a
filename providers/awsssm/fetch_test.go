package awsssm

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

func TestParameterTypes(t *testing.T) {
	srv := moto.Get(t)
	versions := []int64{
		srv.PutParameter(t, "/app/prod/DB_PASSWORD", "s3cure-password", secure),
		srv.PutParameter(t, "/app/prod/HOST", "db.internal", plainType),
		srv.PutParameter(t, "/app/prod/ZONES", "eu-west-1a,eu-west-1b", stringList),
		srv.PutParameter(t, "top-level", "no-slash", plainType),
	}
	rec := mototest.NewRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)

	results := fetch(t, p,
		src(t, p, "parameter: /app/prod/DB_PASSWORD\nas: DB_PASSWORD"),
		src(t, p, "parameter: /app/prod/HOST\nas: HOST"),
		src(t, p, "parameter: /app/prod/ZONES\nas: ZONES"),
		src(t, p, "parameter: top-level\nas: TOP"),
		src(t, p, "path: /app/prod/"),
	)
	// SecureString is decrypted: moto, like AWS without decryption, would
	// answer with its ciphertext otherwise.
	for i, want := range []string{"s3cure-password", "db.internal", "eu-west-1a,eu-west-1b", "no-slash"} {
		if got := plainValue(t, results[i]); got != want {
			t.Errorf("source %d: got another value (%d bytes, want %d)", i, len(got), len(want))
		}
		if want := fmt.Sprint(versions[i]); results[i].Version != want {
			t.Errorf("source %d: Version %q, want %s", i, results[i].Version, want)
		}
	}
	want := map[string]string{"DB_PASSWORD": "s3cure-password", "HOST": "db.internal", "ZONES": "eu-west-1a,eu-west-1b"}
	if got := values(t, results[4]); !maps.Equal(got, want) {
		t.Errorf("path: fields %v, want %v", keysOf(got), keysOf(want))
	}
	// Four names in one batch, one path listing.
	if got := rec.Count("GetParameters"); got != 1 {
		t.Errorf("%d GetParameters calls, want 1", got)
	}
	if got := rec.Count("GetParametersByPath"); got != 1 {
		t.Errorf("%d GetParametersByPath calls, want 1", got)
	}
}

func TestPathRecursion(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/svc/dev/API_KEY", "k1", secure)
	srv.PutParameter(t, "/svc/dev/db/DB_USER", "app", plainType)
	srv.PutParameter(t, "/svc/dev/db/deeper/DB_PASSWORD", "pw", secure)
	srv.PutParameter(t, "/svc/development/NOT_MINE", "x", plainType)
	srv.PutParameter(t, "/clash/A", "1", plainType)
	srv.PutParameter(t, "/clash/sub/A", "2", plainType)
	p := forMoto(t, srv, mototest.NewRecorder(t, srv.URL))

	results := fetch(t, p,
		src(t, p, "path: /svc/dev"),
		src(t, p, "path: /svc/dev/\nrecursive: true"),
		src(t, p, "path: /clash\nrecursive: true"),
		src(t, p, "path: /clash"),
		src(t, p, "path: /nothing/here/"),
	)
	if got := values(t, results[0]); !maps.Equal(got, map[string]string{"API_KEY": "k1"}) {
		t.Errorf("one level: fields %v", keysOf(got))
	}
	want := map[string]string{"API_KEY": "k1", "DB_USER": "app", "DB_PASSWORD": "pw"}
	if got := values(t, results[1]); !maps.Equal(got, want) {
		t.Errorf("recursive: fields %v, want %v", keysOf(got), keysOf(want))
	}
	wantErr(t, results[2].Err, nil, "/clash/A", "/clash/sub/A", "field A", "recursive")
	if got := values(t, results[3]); !maps.Equal(got, map[string]string{"A": "1"}) {
		t.Errorf("one level of a clash: fields %v", keysOf(got))
	}
	wantErr(t, results[4].Err, providers.ErrNotFound, `aws-ssm "ssm": list parameters below /nothing/here (eu-west-1 at `+srv.URL+`)`)
}

func TestVersionsAndLabels(t *testing.T) {
	srv := moto.Get(t)
	// Version numbers as moto gave them: a put it applied twice, retried
	// after a lost response, takes two.
	v1 := srv.PutParameter(t, "/pin/db", "first", secure)
	v2 := srv.PutParameter(t, "/pin/db", "second", secure)
	v3 := srv.PutParameter(t, "/pin/db", "third", secure)
	srv.LabelParameter(t, "/pin/db", v1, "stable")
	srv.LabelParameter(t, "/pin/db", v2, "canary")
	rec := mototest.NewRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)

	results := fetch(t, p,
		src(t, p, "parameter: /pin/db\nas: DB"),
		src(t, p, fmt.Sprintf("parameter: /pin/db\nversion: %d\nas: DB", v1)),
		src(t, p, fmt.Sprintf("parameter: /pin/db:%d\nas: DB", v2)),
		src(t, p, "parameter: /pin/db\nversion: stable\nas: DB"),
		src(t, p, "parameter: /pin/db:canary\nas: DB"),
		src(t, p, "parameter: /pin/db\nversion: 99\nas: DB"),
		src(t, p, "parameter: /pin/db\nversion: nolabel\nas: DB"),
	)
	for i, want := range []struct {
		value   string
		version int64
	}{
		{"third", v3}, {"first", v1}, {"second", v2}, {"first", v1}, {"second", v2},
	} {
		if got := plainValue(t, results[i]); got != want.value {
			t.Errorf("source %d: got the value of another version", i)
		}
		if results[i].Version != fmt.Sprint(want.version) {
			t.Errorf("source %d: Version %q, want %d", i, results[i].Version, want.version)
		}
	}
	wantErr(t, results[5].Err, providers.ErrNotFound, "parameter /pin/db version 99", "eu-west-1")
	wantErr(t, results[6].Err, providers.ErrNotFound, "parameter /pin/db label nolabel")
	// Seven selectors of one parameter cannot share a call.
	if got := rec.Count("GetParameters"); got != 7 {
		t.Errorf("%d GetParameters calls, want 7", got)
	}

	// A label that moves is a new version of what the source reads.
	stable := src(t, p, "parameter: /pin/db\nversion: stable\nas: DB")
	before := versionsOf(t, p, stable)[0]
	srv.LabelParameter(t, "/pin/db", v3, "stable")
	after := versionsOf(t, p, stable)[0]
	if before != fmt.Sprint(v1) || after != fmt.Sprint(v3) {
		t.Errorf("labels %q then %q, want %d then %d", before, after, v1, v3)
	}
	if got := plainValue(t, fetch(t, p, stable)[0]); got != "third" {
		t.Errorf("the moved label read another version")
	}
}

func TestPaginationOverManyParameters(t *testing.T) {
	srv := moto.Get(t)
	for _, n := range []int{11, 57} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			base := fmt.Sprintf("/many%d", n)
			want := map[string]string{}
			versions := map[int]string{}
			for i := range n {
				name := fmt.Sprintf("P%03d", i)
				versions[i] = fmt.Sprint(srv.PutParameter(t, base+"/"+name, fmt.Sprintf("value-%d", i), secure))
				want[name] = fmt.Sprintf("value-%d", i)
			}
			rec := mototest.NewRecorder(t, srv.URL)
			p := forMoto(t, srv, rec)
			var params []*providers.Source
			for i := range n {
				params = append(params, src(t, p, fmt.Sprintf("parameter: %s/P%03d\nas: P%03d", base, i, i)))
			}
			path := src(t, p, "path: "+base)
			results := fetch(t, p, append(params, path)...)
			for i := range n {
				if got := plainValue(t, results[i]); got != fmt.Sprintf("value-%d", i) {
					t.Errorf("parameter %d: another value", i)
				}
			}
			if got := values(t, results[n]); !maps.Equal(got, want) {
				t.Errorf("path: %d fields, want %d", len(got), len(want))
			}
			pages, batches := rec.Count("GetParametersByPath"), rec.Count("GetParameters")
			wantCalls := (n + 9) / 10
			t.Logf("%d parameters: %d GetParametersByPath pages, %d GetParameters calls", n, pages, batches)
			if pages != wantCalls || batches != wantCalls {
				t.Errorf("%d parameters cost %d pages and %d batches, want %d of each", n, pages, batches, wantCalls)
			}
			if got := rec.Count("GetParameter"); got != 0 {
				t.Errorf("%d single reads", got)
			}

			rec.Reset()
			labels := versionsOf(t, p, append(params, path)...)
			for i, l := range labels[:n] {
				if l != versions[i] {
					t.Errorf("parameter %d: label %q, want %s", i, l, versions[i])
				}
			}
			if rec.Count("GetParametersByPath") != wantCalls || rec.Count("GetParameters") != wantCalls {
				t.Errorf("Versions: %d pages and %d batches, want %d of each",
					rec.Count("GetParametersByPath"), rec.Count("GetParameters"), wantCalls)
			}
		})
	}
}

// TestBatchesRunTogether holds every GetParameters call until all of them
// are in flight: were they made one after the other, the first would wait
// in vain.
func TestBatchesRunTogether(t *testing.T) {
	srv := moto.Get(t)
	rec := mototest.NewRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	var srcs []*providers.Source
	for i := range 35 {
		name := fmt.Sprintf("/together/P%02d", i)
		srv.PutParameter(t, name, fmt.Sprint(i), plainType)
		srcs = append(srcs, src(t, p, "parameter: "+name+"\nas: V"))
	}
	rec.Answer = holdUntil(t, "GetParameters", 4)
	results := fetch(t, p, srcs...)
	for i, r := range results {
		if got := plainValue(t, r); got != fmt.Sprint(i) {
			t.Errorf("source %d: another value", i)
		}
	}
	if got := rec.Count("GetParameters"); got != 4 {
		t.Errorf("%d GetParameters calls for 35 names, want 4", got)
	}
}

func TestMissingAndOptional(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/here/present", "present-value", secure)
	p := forMoto(t, srv, mototest.NewRecorder(t, srv.URL))
	results := fetch(t, p,
		src(t, p, "parameter: /here/absent\nas: A"),
		src(t, p, "parameter: /here/present\nas: P"),
		src(t, p, "parameter: /here/absent-too\nas: B\noptional: true"),
		src(t, p, "path: /elsewhere\noptional: true"),
	)
	wantErr(t, results[0].Err, providers.ErrNotFound, `aws-ssm "ssm": get parameter /here/absent (eu-west-1 at `+srv.URL+`): not found`)
	if got := plainValue(t, results[1]); got != "present-value" {
		t.Errorf("the present parameter beside missing ones: another value")
	}
	// optional: true is honoured where the environment is built, for
	// errors that wrap ErrNotFound.
	wantErr(t, results[2].Err, providers.ErrNotFound, "/here/absent-too")
	wantErr(t, results[3].Err, providers.ErrNotFound, "/elsewhere")
	if strings.Contains(fmt.Sprint(results), "present-value") {
		t.Errorf("results print a value")
	}
}

func TestSourceKeysAreChecked(t *testing.T) {
	p := newTest(t, "region: eu-west-1", nil, awsconf.Hooks{})
	for _, tc := range []struct{ yaml, want string }{
		{"as: X", "missing `parameter:`"},
		{"parameter: /a\npath: /b", "exclude"},
		{"path: relative/path", "starts with /"},
		{"path: /a//b", "empty level"},
		{"path: /a\nversion: 3", "pin versions on `parameter:`"},
		{"path: /a\nas: X", "`as`"},
		{"parameter: /a\nrecursive: true\nas: X", "`recursive` applies to `path:`"},
		{"parameter: /a\nkeys: [X]", "one plain value"},
		{"parameter: /a\nmap: {X: y}", "one plain value"},
		{"parameter: /a:3\nversion: 4\nas: X", "give one"},
		{"parameter: /a b\nas: X", "letters, digits"},
		{"parameter: /a\nversion: a/b\nas: X", "version number or a label"},
		{"parameter: /a\nparamter: /b", "paramter"},
	} {
		if _, err := src0(p, tc.yaml); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("source %q: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
	}
	for yaml, want := range map[string]string{
		"parameter: /a:3\nversion: 3\nas: X":  "/a:3",
		"parameter: /a\nversion: prod\nas: X": "/a:prod",
		"path: /a/b/":                         "/a/b",
		"path: /":                             "/",
		"parameter: arn:aws:ssm:eu-west-1:123456789012:parameter/app/db:7\nas: X": "arn:aws:ssm:eu-west-1:123456789012:parameter/app/db:7",
	} {
		s, err := src0(p, yaml)
		if err != nil {
			t.Errorf("source %q: %v", yaml, err)
			continue
		}
		if got := s.Ref.String(); got != want {
			t.Errorf("source %q reads %q, want %q", yaml, got, want)
		}
	}
}

func TestBatchingKeepsOneSelectorPerName(t *testing.T) {
	var ids []string
	for i := range 23 {
		ids = append(ids, fmt.Sprintf("/b/p%02d", i))
	}
	ids = append(ids, "/b/p00:1", "/b/p00:2", "arn:aws:ssm:eu-west-1:123456789012:parameter/b/p01")
	groups := batches(ids)
	total := 0
	for _, g := range groups {
		if len(g) > batchSize {
			t.Errorf("a batch of %d", len(g))
		}
		seen := map[string]bool{}
		for _, id := range g {
			if seen[baseName(id)] {
				t.Errorf("two ids of %s in one batch: %v", baseName(id), g)
			}
			seen[baseName(id)] = true
		}
		total += len(g)
	}
	// Three for the 23 names, and /b/p00:2 in a fourth of its own.
	if total != len(ids) || len(groups) != 4 {
		t.Errorf("%d ids in %d batches, want %d in 4", total, len(groups), len(ids))
	}
}

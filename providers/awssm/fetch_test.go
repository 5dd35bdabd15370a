package awssm

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
	"github.com/secretrun/secretrun/providers/providertest"
)

func TestJSONPlainAndBinarySecrets(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "app/json", `{"USER":"alice","PORT":5432,"RATIO":1.5e3,"TLS":true,"NOTE":null,
		"OPTS":{"a": [1, 2]},"HOSTS":["h1", "h2"],"ESC":"line\nnext \"q\" \u00e9"}`)
	srv.CreateString(t, "app/plain", "just-a-token-value")
	binary := []byte{0, 1, 2, 0xfe, 0xff, 'x'}
	if _, err := srv.Client().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("app/binary"), SecretBinary: binary,
	}); err != nil {
		t.Fatal(err)
	}
	p := forMoto(t, srv, newRecorder(t, srv.URL))

	results := fetch(t, p,
		src(t, p, "secret: app/json"),
		src(t, p, "secret: app/plain\nas: TOKEN"),
		src(t, p, "secret: app/binary\nas: BLOB"),
		src(t, p, "secret: app/json\nas: WHOLE"),
		src(t, p, "secret: app/plain"),
		src(t, p, "secret: app/binary\nkeys: [X]"),
		src(t, p, "secret: app/plain\nkeys: [X]"),
	)

	want := map[string]string{
		"USER": "alice", "PORT": "5432", "RATIO": "1.5e3", "TLS": "true", "NOTE": "",
		"OPTS": `{"a":[1,2]}`, "HOSTS": `["h1","h2"]`, "ESC": "line\nnext \"q\" é",
	}
	if got := values(t, results[0]); !maps.Equal(got, want) {
		t.Errorf("JSON secret: got fields %v, want %v", keysOf(got), keysOf(want))
	}
	for k, f := range results[0].Fields {
		if nested := k == "OPTS" || k == "HOSTS"; f.Nested != nested {
			t.Errorf("field %s: Nested = %v, want %v", k, f.Nested, nested)
		}
	}
	if got := values(t, results[1]); !maps.Equal(got, map[string]string{providers.Plain: "just-a-token-value"}) {
		t.Errorf("plain secret with as: got fields %v", keysOf(got))
	}
	if got := values(t, results[2]); got[providers.Plain] != base64.StdEncoding.EncodeToString(binary) || len(got) != 1 {
		t.Errorf("binary secret: got %d fields, want its base64 as the plain value", len(got))
	}
	if got := values(t, results[3]); len(got) != 1 || !strings.HasPrefix(got[providers.Plain], `{"USER"`) {
		t.Errorf("JSON secret with as: want its whole text as the plain value")
	}
	// Without as:, a plain string is still the plain value; the caller
	// asks for as:.
	if got := values(t, results[4]); !maps.Equal(got, map[string]string{providers.Plain: "just-a-token-value"}) {
		t.Errorf("plain secret without as: got fields %v", keysOf(got))
	}
	wantErr(t, results[5].Err, nil, "binary", "as:", "app/binary", mototest.Region)
	wantErr(t, results[6].Err, nil, "not valid JSON", "as:", "app/plain")
	if strings.Contains(results[6].Err.Error(), "just-a-token") {
		t.Errorf("error shows the value: %v", results[6].Err)
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestVersionPinning(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "pin/db", `{"PASSWORD":"first"}`)
	first := srv.CurrentVersion(t, "pin/db")
	second := srv.PutString(t, "pin/db", `{"PASSWORD":"second"}`)
	rec := newRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)

	results := fetch(t, p,
		src(t, p, "secret: pin/db"),
		src(t, p, "secret: pin/db\nversion_stage: AWSCURRENT"),
		src(t, p, "secret: pin/db\nversion_stage: AWSPREVIOUS"),
		src(t, p, "secret: pin/db\nversion_id: "+first),
		src(t, p, "secret: pin/db\nversion: "+first),
		src(t, p, "secret: pin/db\nversion_id: "+second),
		src(t, p, "secret: pin/db\nversion_id: 00000000-0000-0000-0000-000000000000"),
	)
	for i, want := range []struct{ value, version string }{
		{"second", second}, {"second", second}, {"first", first}, {"first", first}, {"first", first}, {"second", second},
	} {
		if got := values(t, results[i])["PASSWORD"]; got != want.value {
			t.Errorf("source %d: got the value of another version", i)
		}
		if results[i].Version != want.version {
			t.Errorf("source %d: Version = %q, want %q", i, results[i].Version, want.version)
		}
	}
	wantErr(t, results[6].Err, providers.ErrNotFound, "pin/db version 00000000-0000-0000-0000-000000000000")
	// The two current reads are one read of a lone secret, which needs no
	// batch; the pins are read one by one, once per distinct pin.
	if got := rec.Count("BatchGetSecretValue"); got != 0 {
		t.Errorf("%d BatchGetSecretValue calls, want none for one secret", got)
	}
	if got := rec.Count("GetSecretValue"); got != 5 {
		t.Errorf("%d GetSecretValue calls, want 5 (AWSCURRENT, AWSPREVIOUS, two version ids, the missing one)", got)
	}
}

func TestFortyFiveSecretsInThreeBatches(t *testing.T) {
	srv := moto.Get(t)
	var srcs []*providers.Source
	rec := newRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	for i := range 45 {
		name := fmt.Sprintf("batch/s%02d", i)
		srv.CreateString(t, name, fmt.Sprintf(`{"K%02d":"v%02d"}`, i, i))
		srcs = append(srcs, src(t, p, "secret: "+name))
	}
	// The same secret twice is read once.
	srcs = append(srcs, src(t, p, "secret: batch/s07\nkeys: [K07]"))
	rec.Reset()
	// Each batch waits until all three are in flight: run one after the
	// other, the first would wait in vain.
	var arrived sync.WaitGroup
	arrived.Add(3)
	together := make(chan struct{})
	go func() { arrived.Wait(); close(together) }()
	rec.Answer = func(op string, n int, _ *http.Request) *http.Response {
		if op == "BatchGetSecretValue" && n <= 3 {
			arrived.Done()
			select {
			case <-together:
			case <-time.After(10 * time.Second):
				t.Error("the three batches were not in flight at once")
			}
		}
		return nil
	}

	results := fetch(t, p, srcs...)
	for i, r := range results[:45] {
		if got := values(t, r); got[fmt.Sprintf("K%02d", i)] != fmt.Sprintf("v%02d", i) || len(got) != 1 {
			t.Errorf("source %d: wrong fields", i)
		}
	}
	if got := values(t, results[45]); got["K07"] != "v07" {
		t.Errorf("repeated source: wrong fields")
	}
	batches, singles := rec.Count("BatchGetSecretValue"), rec.Count("GetSecretValue")
	t.Logf("45 secrets: %d BatchGetSecretValue calls, %d GetSecretValue calls", batches, singles)
	if batches != 3 || singles != 0 {
		t.Errorf("45 secrets cost %d batch and %d single calls, want 3 and 0", batches, singles)
	}
}

func TestPrefixDiscovery(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "prod/myapp/a-db", `{"DB_USER":"app","SHARED":"from-a"}`)
	srv.CreateString(t, "prod/myapp/b-api", `{"API_KEY":"k-123","SHARED":"from-b"}`)
	srv.CreateString(t, "prod/myapp/SIGNING_KEY", "plain-signing-key")
	srv.CreateString(t, "prod/myapplication/x", `{"NOT_MINE":"1"}`)
	srv.CreateString(t, "staging/myapp/c", `{"NOT_MINE":"2"}`)
	srv.CreateString(t, "named/one", `{"NAMED":"yes"}`)
	srv.CreateString(t, "broken/one/json", `{"A": "unterminated`)
	rec := newRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)

	results := fetch(t, p,
		src(t, p, "secret_prefix: prod/myapp/"),
		src(t, p, "secret: named/one"),
		src(t, p, "secret_prefix: nothing/here/"),
		src(t, p, "secret_prefix: broken/"),
	)
	want := map[string]string{"DB_USER": "app", "API_KEY": "k-123", "SHARED": "from-b", "SIGNING_KEY": "plain-signing-key"}
	if got := values(t, results[0]); !maps.Equal(got, want) {
		t.Errorf("prefix: got fields %v, want %v (later names win)", keysOf(got), keysOf(want))
	}
	if got := values(t, results[1]); got["NAMED"] != "yes" {
		t.Errorf("named source beside a prefix: wrong fields")
	}
	wantErr(t, results[2].Err, providers.ErrNotFound, "nothing/here/", mototest.Region)
	wantErr(t, results[3].Err, nil, "broken/one/json", "not valid JSON")
	if strings.Contains(results[3].Err.Error(), "unterminated") {
		t.Errorf("error shows the value: %v", results[3].Err)
	}
	// The discovered secrets and the named one share one batch.
	if got := rec.Count("BatchGetSecretValue"); got != 1 {
		t.Errorf("%d BatchGetSecretValue calls, want 1", got)
	}
	if got := rec.Count("ListSecrets"); got != 3 {
		t.Errorf("%d ListSecrets calls, want one per prefix", got)
	}

	bad := []string{
		"secret_prefix: p/\nversion_stage: AWSPREVIOUS",
		"secret_prefix: p/\nas: X",
		"secret_prefix: p/\nsecret: q",
		"version_stage: AWSCURRENT",
		"secret: x\nversion_stage: AWSPREVIOUS\nversion_id: abc",
		"secret: x\nversion: a\nversion_id: b",
		"secret: x\nsecrte_prefix: y",
	}
	for _, yaml := range bad {
		if _, err := config.SourceFromYAML(p, "aws", yaml); err == nil {
			t.Errorf("source %q was accepted", yaml)
		}
	}
}

func TestManyPrefixedSecretsPaginate(t *testing.T) {
	srv := moto.Get(t)
	want := map[string]string{}
	for i := range 130 {
		srv.CreateString(t, fmt.Sprintf("many/s%03d", i), fmt.Sprintf(`{"F%03d":"%d"}`, i, i))
		want[fmt.Sprintf("F%03d", i)] = fmt.Sprint(i)
	}
	rec := newRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	if got := values(t, fetch(t, p, src(t, p, "secret_prefix: many/"))[0]); !maps.Equal(got, want) {
		t.Errorf("got %d fields, want %d", len(got), len(want))
	}
	if lists, batches := rec.Count("ListSecrets"), rec.Count("BatchGetSecretValue"); lists != 2 || batches != 7 {
		t.Errorf("130 secrets under a prefix: %d ListSecrets and %d BatchGetSecretValue calls, want 2 and 7", lists, batches)
	}
}

func TestMissingSecret(t *testing.T) {
	srv := moto.Get(t)
	arn := srv.CreateString(t, "here/present", `{"V":"present-value"}`)
	p := forMoto(t, srv, newRecorder(t, srv.URL))
	missingARN := strings.Replace(arn, "here/present", "here/absent", 1)
	srv.CreateString(t, "here/deleted", `{"V":"deleted-value"}`)
	if _, err := srv.Client().DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{
		SecretId: aws.String("here/deleted"), RecoveryWindowInDays: aws.Int64(7),
	}); err != nil {
		t.Fatal(err)
	}
	results := fetch(t, p,
		src(t, p, "secret: here/absent"),
		src(t, p, "secret: "+arn),
		src(t, p, "secret: "+missingARN),
		src(t, p, "secret: here/absent\nversion_stage: AWSPREVIOUS"),
		src(t, p, "secret: here/deleted"),
	)
	wantErr(t, results[4].Err, providers.ErrNotFound, "here/deleted", "deletion")
	wantErr(t, results[0].Err, providers.ErrNotFound, `aws-secrets-manager "aws": get here/absent (eu-west-1 at `+srv.URL+`)`)
	if got := values(t, results[1]); got["V"] != "present-value" {
		t.Errorf("secret by ARN: wrong fields")
	}
	wantErr(t, results[2].Err, providers.ErrNotFound, missingARN)
	wantErr(t, results[3].Err, providers.ErrNotFound, "here/absent stage AWSPREVIOUS")
}

func TestInvalidJSON(t *testing.T) {
	srv := moto.Get(t)
	const value = "hunter2-do-not-print"
	srv.CreateString(t, "bad/json", `{"PASSWORD": "`+value+`" "USER": "x"}`)
	srv.CreateString(t, "bad/trailing", `{"PASSWORD": "`+value+`"} {}`)
	srv.CreateString(t, "bad/array", `["`+value+`"]`)
	p := forMoto(t, srv, newRecorder(t, srv.URL))
	results := fetch(t, p,
		src(t, p, "secret: bad/json"),
		src(t, p, "secret: bad/trailing"),
		src(t, p, "secret: bad/array\nkeys: [PASSWORD]"),
		src(t, p, "secret: bad/json\nas: RAW"),
	)
	wantErr(t, results[0].Err, nil, "bad/json", "eu-west-1", "not valid JSON", "byte", "`as:`")
	wantErr(t, results[1].Err, nil, "bad/trailing", "not valid JSON")
	wantErr(t, results[2].Err, nil, "bad/array", "not a JSON object")
	for _, r := range results[:3] {
		if strings.Contains(r.Err.Error(), value) || strings.Contains(r.Err.Error(), "hunter") {
			t.Errorf("error shows the value: %v", r.Err)
		}
	}
	if got := values(t, results[3]); !strings.Contains(got[providers.Plain], value) {
		t.Errorf("as: on a malformed JSON secret must give its text")
	}
}

// TestBatchErrorsGoToTheirSources answers BatchGetSecretValue with the
// per-secret errors that moto cannot produce (a denied secret, a KMS key
// that cannot decrypt) beside a value.
func TestBatchErrorsGoToTheirSources(t *testing.T) {
	srv := moto.Get(t)
	rec := newRecorder(t, srv.URL)
	rec.Answer = func(op string, _ int, _ *http.Request) *http.Response {
		if op != "BatchGetSecretValue" {
			return nil
		}
		return jsonResponse(`{
			"SecretValues": [{"ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ok/one-AbCdEf", "Name": "ok/one",
				"VersionId": "v1", "VersionStages": ["AWSCURRENT"], "SecretString": "{\"OK\":\"fine\"}"}],
			"Errors": [
				{"SecretId": "no/access", "ErrorCode": "AccessDeniedException", "Message": "User arn:aws:sts::123456789012:assumed-role/ci is not authorized to perform: secretsmanager:GetSecretValue"},
				{"SecretId": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kms/locked", "ErrorCode": "DecryptionFailure", "Message": "Access to KMS is not allowed"},
				{"SecretId": "gone", "ErrorCode": "ResourceNotFoundException", "Message": "Secrets Manager can't find the specified secret."}
			]}`)
	}
	p := forMoto(t, srv, rec)
	results := fetch(t, p,
		src(t, p, "secret: no/access"),
		src(t, p, "secret: arn:aws:secretsmanager:eu-west-1:123456789012:secret:ok/one"),
		src(t, p, "secret: arn:aws:secretsmanager:eu-west-1:123456789012:secret:kms/locked"),
		src(t, p, "secret: gone"),
		src(t, p, "secret: never/answered"),
	)
	wantErr(t, results[0].Err, providers.ErrDenied, "get no/access (eu-west-1", "AccessDeniedException")
	if got := values(t, results[1]); got["OK"] != "fine" {
		t.Errorf("partial ARN: wrong fields")
	}
	if results[1].Version != "v1" {
		t.Errorf("Version = %q, want v1", results[1].Version)
	}
	wantErr(t, results[2].Err, providers.ErrDenied, "kms/locked", "KMS", "kms:Decrypt", "DecryptionFailure")
	wantErr(t, results[3].Err, providers.ErrNotFound, "get gone (eu-west-1")
	wantErr(t, results[4].Err, providers.ErrNotFound, "never/answered")
}

func TestThrottlingIsRetried(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "busy/one", `{"V":"eventually"}`)
	srv.CreateString(t, "busy/two", `{"W":"too"}`)
	// A lone secret is read with GetSecretValue, two with a batch: both
	// calls are retried.
	for _, c := range []struct {
		op      string
		secrets []string
	}{
		{"GetSecretValue", []string{"busy/one"}},
		{"BatchGetSecretValue", []string{"busy/one", "busy/two"}},
	} {
		rec := newRecorder(t, srv.URL)
		rec.Answer = func(op string, n int, _ *http.Request) *http.Response {
			if op == c.op && n <= 2 {
				return awsError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
			}
			return nil
		}
		p := forMoto(t, srv, rec)
		var srcs []*providers.Source
		for _, name := range c.secrets {
			srcs = append(srcs, src(t, p, "secret: "+name))
		}
		if got := values(t, fetch(t, p, srcs...)[0]); got["V"] != "eventually" {
			t.Errorf("%s: wrong fields after throttling", c.op)
		}
		if got := rec.Count(c.op); got != 3 {
			t.Errorf("%d %s attempts, want 3 (two throttled)", got, c.op)
		}
	}
}

func TestThrottlingThatLastsIsUnavailable(t *testing.T) {
	srv := moto.Get(t)
	rec := newRecorder(t, srv.URL)
	rec.Answer = func(op string, _ int, _ *http.Request) *http.Response {
		return awsError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	}
	p := forMoto(t, srv, rec)
	_, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "secret: busy/forever")})
	wantErr(t, err, providers.ErrUnavailable, `aws-secrets-manager "aws"`, "eu-west-1", "ThrottlingException")
}

func TestBatchDeniedFallsBackToSingleReads(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "narrow/a", `{"A":"1"}`)
	srv.CreateString(t, "narrow/b", `{"B":"2"}`)
	rec := newRecorder(t, srv.URL)
	rec.Answer = func(op string, _ int, _ *http.Request) *http.Response {
		if op == "BatchGetSecretValue" {
			return awsError(http.StatusBadRequest, "AccessDeniedException", "not authorized to perform: secretsmanager:BatchGetSecretValue")
		}
		return nil
	}
	p := forMoto(t, srv, rec)
	srcs := []*providers.Source{src(t, p, "secret: narrow/a"), src(t, p, "secret: narrow/b"), src(t, p, "secret: narrow/c")}
	for range 2 {
		results := fetch(t, p, srcs...)
		if values(t, results[0])["A"] != "1" || values(t, results[1])["B"] != "2" {
			t.Errorf("wrong fields read one by one")
		}
		wantErr(t, results[2].Err, providers.ErrNotFound, "narrow/c")
	}
	if got := rec.Count("BatchGetSecretValue"); got != 1 {
		t.Errorf("%d BatchGetSecretValue calls, want 1: a refusal is remembered", got)
	}
	if got := rec.Count("GetSecretValue"); got != 6 {
		t.Errorf("%d GetSecretValue calls, want 6", got)
	}

	// A lone secret is one GetSecretValue from the start, never a refused
	// batch first: a policy that grants only GetSecretValue costs no round
	// trip.
	rec = newRecorder(t, srv.URL)
	rec.Answer = func(op string, _ int, _ *http.Request) *http.Response {
		if op == "BatchGetSecretValue" {
			return awsError(http.StatusBadRequest, "AccessDeniedException", "not authorized to perform: secretsmanager:BatchGetSecretValue")
		}
		return nil
	}
	p = forMoto(t, srv, rec)
	if got := values(t, fetch(t, p, src(t, p, "secret: narrow/a"))[0]); got["A"] != "1" {
		t.Errorf("lone secret: wrong fields")
	}
	if b, g := rec.Count("BatchGetSecretValue"), rec.Count("GetSecretValue"); b != 0 || g != 1 {
		t.Errorf("lone secret: %d BatchGetSecretValue and %d GetSecretValue calls, want 0 and 1", b, g)
	}
}

func TestUnreachableEndpoint(t *testing.T) {
	// A port that was just free: nothing listens there.
	endpoint := "http://127.0.0.1:" + fmt.Sprint(providertest.FreePort(t))
	vars := map[string]string{"AWS_ACCESS_KEY_ID": "AKIA0", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "ap-south-1"}
	p := newTest(t, "endpoint: "+endpoint, vars, awsconf.Hooks{})
	_, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "secret: any/thing")})
	wantErr(t, err, providers.ErrUnavailable, `aws-secrets-manager "aws"`, "ap-south-1", endpoint)
	_, err = p.Versions(context.Background(), []*providers.Source{src(t, p, "secret: any/thing")})
	wantErr(t, err, providers.ErrUnavailable, "ap-south-1", endpoint)
}

func TestOneClientPerInstance(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "reuse/one", `{"V":"1"}`)
	rec := newRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	if rec.Count("BatchGetSecretValue") != 0 || p.conn.Peek() != nil {
		t.Fatal("building the provider contacted the backend or made a client")
	}
	s := src(t, p, "secret: reuse/one")
	fetch(t, p, s)
	first := p.conn.Peek()
	fetch(t, p, s)
	if _, err := p.Versions(context.Background(), []*providers.Source{s}); err != nil {
		t.Fatal(err)
	}
	if p.conn.Peek() != first {
		t.Error("a second call made another client")
	}
}

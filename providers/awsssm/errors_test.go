package awsssm

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
	"github.com/secretrun/secretrun/providers/providertest/faultproxy"
)

// deny answers as AWS does when the caller may not read name: a
// GetParameters call that includes it is refused as a whole, and so is a
// GetParameter of it.
func deny(name string) func(string, int, *http.Request) *http.Response {
	return func(op string, _ int, req *http.Request) *http.Response {
		b := body(req)
		if (op == "GetParameters" || op == "GetParameter") && strings.Contains(b, `"`+name+`"`) {
			return mototest.AWSError(http.StatusBadRequest, "AccessDeniedException",
				"User: arn:aws:sts::123456789012:assumed-role/ci/x is not authorized to perform: ssm:"+op+" on resource: arn:aws:ssm:eu-west-1:123456789012:parameter"+name)
		}
		return nil
	}
}

func TestDeniedParameterFailsOnlyItsSource(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/acl/a", "value-a", secure)
	srv.PutParameter(t, "/acl/b", "value-b", secure)
	srv.PutParameter(t, "/acl/secret", "value-secret", secure)
	rec := mototest.NewRecorder(t, srv.URL)
	rec.Answer = deny("/acl/secret")
	p := forMoto(t, srv, rec)
	srcs := []*providers.Source{
		src(t, p, "parameter: /acl/a\nas: A"),
		src(t, p, "parameter: /acl/secret\nas: S"),
		src(t, p, "parameter: /acl/b\nas: B"),
	}
	for range 2 {
		results := fetch(t, p, srcs...)
		if plainValue(t, results[0]) != "value-a" || plainValue(t, results[2]) != "value-b" {
			t.Errorf("wrong values beside a denied parameter")
		}
		wantErr(t, results[1].Err, providers.ErrDenied, `aws-ssm "ssm": get parameter /acl/secret (eu-west-1`, "AccessDeniedException")
	}
	// The refusal concerned one parameter, not the batch action: batches
	// are still tried.
	if got := rec.Count("GetParameters"); got != 2 {
		t.Errorf("%d GetParameters calls, want 2", got)
	}
	if got := rec.Count("GetParameter"); got != 6 {
		t.Errorf("%d GetParameter calls, want 6", got)
	}
}

func TestBatchActionDeniedIsRemembered(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/narrow/a", "1", plainType)
	srv.PutParameter(t, "/narrow/b", "2", plainType)
	rec := mototest.NewRecorder(t, srv.URL)
	rec.Answer = func(op string, _ int, _ *http.Request) *http.Response {
		if op == "GetParameters" {
			return mototest.AWSError(http.StatusBadRequest, "AccessDeniedException", "not authorized to perform: ssm:GetParameters")
		}
		return nil
	}
	p := forMoto(t, srv, rec)
	srcs := []*providers.Source{src(t, p, "parameter: /narrow/a\nas: A"), src(t, p, "parameter: /narrow/b\nas: B"), src(t, p, "parameter: /narrow/c\nas: C")}
	for range 2 {
		results := fetch(t, p, srcs...)
		if plainValue(t, results[0]) != "1" || plainValue(t, results[1]) != "2" {
			t.Errorf("wrong values read one by one")
		}
		wantErr(t, results[2].Err, providers.ErrNotFound, "/narrow/c", "ParameterNotFound")
	}
	if got := rec.Count("GetParameters"); got != 1 {
		t.Errorf("%d GetParameters calls, want 1: a refused batch action is remembered", got)
	}
}

func TestDeniedPathAndKMS(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/kms/a", "1", secure)
	rec := mototest.NewRecorder(t, srv.URL)
	rec.Answer = func(op string, _ int, req *http.Request) *http.Response {
		switch {
		case op == "GetParametersByPath" && strings.Contains(body(req), "/locked"):
			return mototest.AWSError(http.StatusBadRequest, "AccessDeniedException", "not authorized to perform: ssm:GetParametersByPath")
		case op == "GetParameters":
			return mototest.AWSError(http.StatusBadRequest, "InvalidKeyId", "The key ID is not valid or is disabled")
		case op == "GetParameter":
			return mototest.AWSError(http.StatusBadRequest, "InvalidKeyId", "The key ID is not valid or is disabled")
		}
		return nil
	}
	p := forMoto(t, srv, rec)
	results := fetch(t, p, src(t, p, "path: /locked"), src(t, p, "parameter: /kms/a\nas: A"), src(t, p, "path: /kms"))
	wantErr(t, results[0].Err, providers.ErrDenied, "list parameters below /locked (eu-west-1")
	wantErr(t, results[1].Err, providers.ErrDenied, "/kms/a", "kms:Decrypt", "InvalidKeyId")
	if got := values(t, results[2]); got["a"] != "1" {
		t.Errorf("a path beside denied sources: wrong fields")
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/busy/one", "eventually", secure)
	rec := mototest.NewRecorder(t, srv.URL)
	rec.Answer = func(op string, n int, _ *http.Request) *http.Response {
		if op == "GetParameters" && n <= 2 {
			return mototest.AWSError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		}
		return nil
	}
	p := forMoto(t, srv, rec)
	if got := plainValue(t, fetch(t, p, src(t, p, "parameter: /busy/one\nas: V"))[0]); got != "eventually" {
		t.Errorf("wrong value after throttling")
	}
	if got := rec.Count("GetParameters"); got != 3 {
		t.Errorf("%d GetParameters attempts, want 3 (two throttled)", got)
	}
}

func TestThrottlingThatLastsIsUnavailable(t *testing.T) {
	srv := moto.Get(t)
	rec := mototest.NewRecorder(t, srv.URL)
	rec.Answer = func(string, int, *http.Request) *http.Response {
		return mototest.AWSError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	}
	p := forMoto(t, srv, rec)
	_, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "parameter: /busy/forever\nas: V")})
	wantErr(t, err, providers.ErrUnavailable, `aws-ssm "ssm"`, "/busy/forever", "eu-west-1", "ThrottlingException")
	_, err = p.Fetch(context.Background(), []*providers.Source{src(t, p, "path: /busy")})
	wantErr(t, err, providers.ErrUnavailable, `aws-ssm "ssm"`, "/busy", "eu-west-1", "ThrottlingException")
}

// TestFaults puts a fault proxy between the provider and moto: an outage
// fails the whole fetch as unavailable, names the region and endpoint, and
// the provider recovers once the backend does.
func TestFaults(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/fault/a", "value-a", secure)
	proxy := faultproxy.Start(t, strings.TrimPrefix(srv.URL, "http://"))
	vars := srv.Env()
	vars["AWS_ENDPOINT_URL"] = proxy.URL()
	p := newTest(t, "{}", vars, awsconf.Hooks{})
	param := src(t, p, "parameter: /fault/a\nas: A")
	path := src(t, p, "path: /fault")

	for _, mode := range []faultproxy.Mode{
		faultproxy.Refuse,
		faultproxy.Reset,
		faultproxy.HTTPStatus(http.StatusServiceUnavailable, 0),
		faultproxy.HTTPStatus(http.StatusInternalServerError, 0),
		faultproxy.HTTPStatus(http.StatusTooManyRequests, 0),
	} {
		t.Run(mode.String(), func(t *testing.T) {
			proxy.Set(mode)
			for _, s := range []*providers.Source{param, path} {
				_, err := p.Fetch(context.Background(), []*providers.Source{s})
				wantErr(t, err, providers.ErrUnavailable, `aws-ssm "ssm"`, s.Ref.String(), "eu-west-1 at "+proxy.URL())
				_, err = p.Versions(context.Background(), []*providers.Source{s})
				wantErr(t, err, providers.ErrUnavailable, s.Ref.String())
			}
			proxy.Set(faultproxy.Pass)
			if got := plainValue(t, fetch(t, p, param)[0]); got != "value-a" {
				t.Errorf("after the fault: another value")
			}
		})
	}
	t.Run("blackhole", func(t *testing.T) {
		proxy.Set(faultproxy.Blackhole)
		defer proxy.Set(faultproxy.Pass)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := p.Fetch(ctx, []*providers.Source{param})
		if err == nil {
			t.Fatal("a fetch through a black hole succeeded")
		}
		if !wholeBackend(err) {
			t.Errorf("a black hole: %v, want a whole-backend error", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("the fetch outlived its context by %v", time.Since(start))
		}
	})
}

func TestErrorsNeverShowValues(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/leak/x/A", "leak-canary-1", secure)
	srv.PutParameter(t, "/leak/y/A", "leak-canary-2", plainType)
	rec := mototest.NewRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	results := fetch(t, p,
		src(t, p, "path: /leak\nrecursive: true"),
		src(t, p, "parameter: /leak/x/A\nversion: 5\nas: A"),
	)
	var msgs []string
	for _, r := range results {
		if r.Err == nil {
			t.Fatal("want errors for both sources")
		}
		msgs = append(msgs, r.Err.Error())
	}
	rec.Answer = func(string, int, *http.Request) *http.Response {
		return mototest.AWSError(http.StatusInternalServerError, "InternalServerError", "try again")
	}
	if _, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "path: /leak/x")}); err != nil {
		msgs = append(msgs, err.Error())
	}
	for _, m := range msgs {
		if strings.Contains(m, "leak-canary") {
			t.Errorf("error shows a value: %s", m)
		}
	}
}

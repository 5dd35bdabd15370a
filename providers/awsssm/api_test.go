package awsssm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
	"github.com/secretrun/secretrun/providers/internal/awsjson/awsjsontest"
)

const (
	testKeyID   = "AKIDSSMTEST"
	testSecret  = "ssm-test-secret-key"
	testSession = "ssm-test-session-token"
)

// fakeSSM answers each call with answer(op, n, body), n counting the
// calls of op; a zero status is 200.
type fakeSSM struct {
	t      *testing.T
	answer func(op string, n int, body map[string]any) (status int, header http.Header, reply string)

	mu    sync.Mutex
	calls map[string]int
	last  *http.Request
	conns atomic.Int32
}

func (f *fakeSSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		f.t.Errorf("request body is not JSON: %v", err)
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	n := f.calls[op]
	f.last = r
	f.mu.Unlock()
	status, header, reply := f.answer(op, n, body)
	for k, v := range header {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", jsonType)
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.WriteString(w, reply)
}

func (f *fakeSSM) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// start serves f on loopback, counting the connections made to it.
func (f *fakeSSM) start(t *testing.T) *httptest.Server {
	f.t = t
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// awsError is Parameter Store's error body for code.
func awsError(code, message string) string {
	return fmt.Sprintf(`{"__type":%q,"message":%q}`, code, message)
}

func oneParameter(name, value string, version int) string {
	return fmt.Sprintf(`{"Parameters":[{"Name":%q,"ARN":"arn:aws:ssm:eu-west-1:123456789012:parameter%s","Value":%q,"Version":%d,"Type":"SecureString"}],"InvalidParameters":[]}`,
		name, name, value, version)
}

// fakeEnv is the environment of a provider that talks to srv with static
// keys, a session token and a region, as a user's CI would.
func fakeEnv(srv *httptest.Server) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     testKeyID,
		"AWS_SECRET_ACCESS_KEY": testSecret,
		"AWS_SESSION_TOKEN":     testSession,
		"AWS_REGION":            mototest.Region,
		"AWS_ENDPOINT_URL":      srv.URL,
	}
}

// fastRetries gives p a client for srv whose retries do not wait, so that
// tests of what is retried take no seconds of backoff.
func fastRetries(t *testing.T, p *provider, srv *httptest.Server) {
	t.Helper()
	cfg := aws.Config{
		Region:      mototest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(testKeyID, testSecret, ""),
		HTTPClient:  srv.Client(),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
	}
	a, err := newAPI(cfg, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.conn.Get(func() (*conn, error) {
		return &conn{ssm: a, loaded: awsconf.Loaded{Config: cfg, Endpoint: srv.URL}}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestRequestsAreSignedJSON11(t *testing.T) {
	f := &fakeSSM{answer: func(string, int, map[string]any) (int, http.Header, string) {
		return 0, nil, oneParameter("/signed/a", "value-a", 1)
	}}
	srv := f.start(t)
	p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
	before := time.Now().UTC()
	if got := plainValue(t, fetch(t, p, src(t, p, "parameter: /signed/a\nas: A"))[0]); got != "value-a" {
		t.Errorf("another value")
	}
	r := f.last
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		t.Errorf("%s %s, want POST /", r.Method, r.URL.Path)
	}
	for h, want := range map[string]string{
		"Content-Type":         "application/x-amz-json-1.1",
		"X-Amz-Target":         "AmazonSSM.GetParameters",
		"X-Amz-Security-Token": testSession,
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	date, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || date.Before(before.Truncate(time.Second)) || date.After(time.Now().Add(time.Second)) {
		t.Errorf("X-Amz-Date %q is not the time of the request (%v)", r.Header.Get("X-Amz-Date"), err)
	}
	auth := r.Header.Get("Authorization")
	scope := "AWS4-HMAC-SHA256 Credential=" + testKeyID + "/" + date.Format("20060102") + "/eu-west-1/ssm/aws4_request, "
	if !strings.HasPrefix(auth, scope) {
		t.Errorf("Authorization %q, want the scope %q", auth, scope)
	}
	if !strings.Contains(auth, "SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=") {
		t.Errorf("Authorization %q does not sign the headers that say what the call is", auth)
	}
}

func TestErrorBodiesMapToSentinels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   error
		says   []string
	}{
		{"NamespacedType", 400, nil, awsError("com.amazonaws.ssm#ParameterNotFound", ""), providers.ErrNotFound, []string{"(ParameterNotFound)"}},
		{"HeaderWinsOverBody", 400, http.Header{"X-Amzn-Errortype": {"AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/"}},
			awsError("SomethingElse", "not authorized to perform: ssm:GetParameters"), providers.ErrDenied, []string{"AccessDeniedException: not authorized"}},
		{"KMS", 400, nil, awsError("InvalidKeyId", "The key is disabled"), providers.ErrDenied, []string{"kms:Decrypt", "InvalidKeyId: The key is disabled"}},
		{"CodeMember", 400, nil, `{"code":"UnrecognizedClientException","Message":"The security token included in the request is invalid."}`, providers.ErrAuth, []string{"UnrecognizedClientException: The security token"}},
		{"Throttled", 400, nil, awsError("ThrottlingException", "Rate exceeded"), providers.ErrUnavailable, []string{"ThrottlingException: Rate exceeded"}},
		{"GatewayPage", 502, http.Header{"Content-Type": {"text/html"}}, "<html>Bad Gateway</html>", providers.ErrUnavailable, []string{"StatusCode: 502", "an error response is not the JSON expected"}},
		{"EmptyServerError", 500, nil, "", providers.ErrUnavailable, []string{"HTTP 500: UnknownError"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSSM{answer: func(string, int, map[string]any) (int, http.Header, string) { return tc.status, tc.header, tc.body }}
			srv := f.start(t)
			p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
			fastRetries(t, p, srv)
			results, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "parameter: /errs/a\nas: A")})
			if err == nil {
				err = results[0].Err
			}
			wantErr(t, err, tc.want, append([]string{`aws-ssm "ssm"`, "/errs/a"}, tc.says...)...)
		})
	}
}

func TestThrottledCallRetriedThenAnswered(t *testing.T) {
	f := &fakeSSM{answer: func(op string, n int, _ map[string]any) (int, http.Header, string) {
		if n <= 2 {
			return 400, nil, awsError("ThrottlingException", "Rate exceeded")
		}
		return 0, nil, oneParameter("/busy/a", "after-throttling", 4)
	}}
	srv := f.start(t)
	p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
	fastRetries(t, p, srv)
	r := fetch(t, p, src(t, p, "parameter: /busy/a\nas: A"))[0]
	if got := plainValue(t, r); got != "after-throttling" || r.Version != "4" {
		t.Errorf("another value, or version %q", r.Version)
	}
	if got := f.count("GetParameters"); got != 3 {
		t.Errorf("%d GetParameters calls, want 3 (two throttled)", got)
	}
	if got := f.conns.Load(); got != 1 {
		t.Errorf("%d connections for three attempts, want 1: error answers keep the connection", got)
	}
}

// TestAttemptsAreLimited: the SDK's standard three attempts, then the
// error of the last.
func TestAttemptsAreLimited(t *testing.T) {
	f := &fakeSSM{answer: func(string, int, map[string]any) (int, http.Header, string) {
		return 503, nil, awsError("ServiceUnavailable", "try later")
	}}
	srv := f.start(t)
	p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
	fastRetries(t, p, srv)
	_, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "path: /down")})
	wantErr(t, err, providers.ErrUnavailable, "list parameters below /down", "ServiceUnavailable: try later")
	if got := f.count("GetParametersByPath"); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
}

// TestClockSkewIsCorrected: on a machine whose clock is an hour behind, a
// signature the server thinks is stale is signed again at the server's
// time, and later calls start from that time.
func TestClockSkewIsCorrected(t *testing.T) {
	ahead := time.Hour
	f := &fakeSSM{}
	var stale atomic.Int32
	f.answer = func(op string, n int, body map[string]any) (int, http.Header, string) {
		now := time.Now().Add(ahead)
		header := http.Header{"Date": {now.UTC().Format(http.TimeFormat)}}
		signed, _ := time.Parse("20060102T150405Z", f.last.Header.Get("X-Amz-Date"))
		if d := now.Sub(signed); d > 5*time.Minute || d < -5*time.Minute {
			stale.Add(1)
			return 400, header, awsError("InvalidSignatureException", "Signature expired: is now earlier than the time of the server")
		}
		return 0, header, oneParameter("/skew/a", "in-time", 1)
	}
	srv := f.start(t)
	p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
	fastRetries(t, p, srv)
	s := src(t, p, "parameter: /skew/a\nas: A")
	for range 3 {
		if got := plainValue(t, fetch(t, p, s)[0]); got != "in-time" {
			t.Errorf("another value")
		}
	}
	if got := stale.Load(); got != 1 {
		t.Errorf("%d stale signatures, want 1: the first, then every call signed at the server's time", got)
	}
}

func TestOneConnectionForEveryCall(t *testing.T) {
	f := &fakeSSM{answer: func(op string, _ int, _ map[string]any) (int, http.Header, string) {
		if op == "GetParametersByPath" {
			return 0, nil, `{"Parameters":[{"Name":"/keep/b","Value":"b","Version":1}]}`
		}
		return 0, nil, oneParameter("/keep/a", "a", 1)
	}}
	srv := f.start(t)
	p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
	srcs := []*providers.Source{src(t, p, "parameter: /keep/a\nas: A"), src(t, p, "path: /keep")}
	for range 5 {
		fetch(t, p, srcs...)
		versionsOf(t, p, srcs...)
	}
	if got := f.conns.Load(); got != 1 {
		t.Errorf("%d connections for 20 sequential calls, want 1 kept alive", got)
	}
}

// TestPagesFollowNextToken: a path is every page, the token of each sent
// back for the next.
func TestPagesFollowNextToken(t *testing.T) {
	f := &fakeSSM{answer: func(_ string, n int, body map[string]any) (int, http.Header, string) {
		if body["Path"] != "/pages" || body["Recursive"] != true || body["MaxResults"] != float64(pageSize) {
			t.Errorf("request %v", body)
		}
		want := map[int]any{1: nil, 2: "t2", 3: "t3"}[n]
		if body["NextToken"] != want {
			t.Errorf("call %d: NextToken %v, want %v", n, body["NextToken"], want)
		}
		next := ""
		if n < 3 {
			next = fmt.Sprintf(`,"NextToken":"t%d"`, n+1)
		}
		return 0, nil, fmt.Sprintf(`{"Parameters":[{"Name":"/pages/p%d","Value":"v%d","Version":1}]%s}`, n, n, next)
	}}
	srv := f.start(t)
	p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
	got := values(t, fetch(t, p, src(t, p, "path: /pages\nrecursive: true"))[0])
	if len(got) != 3 || got["p1"] != "v1" || got["p3"] != "v3" {
		t.Errorf("fields %v, want p1..p3 from three pages", keysOf(got))
	}
}

// TestWriteErrorsNeverQuoteTheValue: a server (or a proxy) that answers a
// put with the request in its body does not get the value into a message.
func TestWriteErrorsNeverQuoteTheValue(t *testing.T) {
	const canary = "put-canary-value"
	for _, tc := range []struct {
		name   string
		status int
		reply  func(value string) string
	}{
		{"Validation", 400, func(v string) string { return awsError("ValidationException", "Value '"+v+"' at 'value' failed") }},
		{"EchoNotJSON", 500, func(v string) string { return "bad request: " + v }},
		{"EchoOnSuccess", 200, func(v string) string { return v }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSSM{answer: func(op string, _ int, body map[string]any) (int, http.Header, string) {
				if op == "PutParameter" {
					if body["Type"] != "SecureString" || body["Tier"] != "Standard" || body["Overwrite"] != true || body["Name"] != "/w/A" {
						t.Errorf("PutParameter %v", body)
					}
					return tc.status, nil, tc.reply(fmt.Sprint(body["Value"]))
				}
				return 0, nil, `{"Parameters":[],"InvalidParameters":["/w/A"]}`
			}}
			srv := f.start(t)
			p := newTest(t, "{}", fakeEnv(srv), awsconf.Hooks{})
			fastRetries(t, p, srv)
			s := src(t, p, "path: /w")
			_, err := p.Write(context.Background(), s, []providers.NamedSecret{{Name: "A", Value: providers.NewSecret(canary)}}, true)
			wantErr(t, err, nil, `aws-ssm "ssm": put parameter /w/A`)
			if strings.Contains(err.Error(), canary) {
				t.Errorf("the error quotes the value: %v", err)
			}
		})
	}
}

// TestEndpointsAsTheSDKResolves compares the URL chosen for each region
// and setting with the SDK's own rules.
func TestEndpointsAsTheSDKResolves(t *testing.T) {
	sdk := ssm.NewDefaultEndpointResolverV2()
	awsjsontest.EndpointsMatchSDK(t, ssmService, func(region string, fips, dual bool) (string, error) {
		e, err := sdk.ResolveEndpoint(context.Background(), ssm.EndpointParameters{
			Region: aws.String(region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual)})
		return e.URI.String(), err
	})
	for region, want := range map[string]string{
		"fips-us-gov-west-1": "https://ssm.us-gov-west-1.amazonaws.com/",
		"us-east-1-fips":     "https://ssm-fips.us-east-1.amazonaws.com/",
	} {
		if got, _, err := resolveEndpoint(aws.Config{Region: region}, ""); err != nil || got != want {
			t.Errorf("pseudo-region %s: %s (%v), want %s", region, got, err, want)
		}
	}
	if got, _, err := resolveEndpoint(aws.Config{Region: "eu-west-1"}, "http://127.0.0.1:4566/prefix"); err != nil || got != "http://127.0.0.1:4566/prefix" {
		t.Errorf("an endpoint with a path: %s (%v)", got, err)
	}
	fipsOn := []any{config.LoadOptions{UseFIPSEndpoint: aws.FIPSEndpointStateEnabled}}
	if _, _, err := resolveEndpoint(aws.Config{Region: "eu-west-1", ConfigSources: fipsOn}, "http://127.0.0.1:4566"); err == nil || !strings.Contains(err.Error(), "FIPS") {
		t.Errorf("FIPS with a custom endpoint: %v, want a refusal naming FIPS", err)
	}
	dualOn := []any{config.LoadOptions{UseDualStackEndpoint: aws.DualStackEndpointStateEnabled}}
	if _, _, err := resolveEndpoint(aws.Config{Region: "eu-west-1", ConfigSources: dualOn}, "http://127.0.0.1:4566"); err == nil || !strings.Contains(err.Error(), "dual-stack") {
		t.Errorf("dual-stack with a custom endpoint: %v, want a refusal naming dual-stack", err)
	}
	if _, _, err := resolveEndpoint(aws.Config{Region: "eu west 1"}, ""); err == nil || !strings.Contains(err.Error(), `"eu west 1"`) {
		t.Errorf("a malformed region: %v, want a refusal naming it", err)
	}
}

// TestEndpointFromSharedConfig: with no endpoint in the environment, the
// profile's `services` section for ssm wins over its endpoint_url, and
// ignore_configured_endpoint_urls sends calls to AWS itself.
func TestEndpointFromSharedConfig(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/shared/one", "from-profile", plainType)
	nowhere := "http://127.0.0.1:1"
	for _, tc := range []struct {
		name, profile string
		wantHost      string
	}{
		{"Services", "services = local\nendpoint_url = " + nowhere + "\n[services local]\nssm =\n  endpoint_url = " + srv.URL, ""},
		{"EndpointURL", "endpoint_url = " + srv.URL, ""},
		{"Ignored", "ignore_configured_endpoint_urls = true\nendpoint_url = " + srv.URL, "ssm.eu-west-1.amazonaws.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config")
			conf := "[profile dev]\nregion = eu-west-1\naws_access_key_id = " + mototest.AccessKeyID +
				"\naws_secret_access_key = " + mototest.SecretAccessKey + "\n" + tc.profile + "\n"
			if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			rec := mototest.NewRecorder(t, srv.URL)
			p := newTest(t, "profile: dev", map[string]string{"AWS_CONFIG_FILE": file, "AWS_EC2_METADATA_DISABLED": "true"}, awsconf.Hooks{HTTPClient: rec.Client()})
			results, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "parameter: /shared/one\nas: ONE")})
			if tc.wantHost != "" {
				if err == nil && results[0].Err == nil {
					t.Errorf("a fetch succeeded with the configured endpoints ignored")
				}
				if !rec.SawHost(tc.wantHost) {
					t.Errorf("calls went to %v, want %s", rec.Hosts(), tc.wantHost)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := plainValue(t, results[0]); got != "from-profile" {
				t.Errorf("another value")
			}
		})
	}
}

package awsjson

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/defaults"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/secretrun/secretrun/providers"
)

// Caller signs, sends and retries the requests of one service at one
// endpoint as the SDK's clients do, whatever the service's protocol:
// Client speaks AWS JSON 1.1 over it, awsconf the protocols of STS and SSO.
// Its errors have the SDK's shapes (smithy.OperationError around
// awshttp.ResponseError around the service's smithy.APIError, or
// smithyhttp.RequestSendError, retry.MaxAttemptsError).
type Caller struct {
	svc    Service
	url    *url.URL
	region string
	creds  aws.CredentialsProvider
	http   aws.HTTPClient
	retry  aws.RetryerV2
	signer *v4.Signer
	// skew is the server's clock minus ours, as the last response's Date
	// header told, in nanoseconds; requests are signed at our time plus
	// skew, so that a machine whose clock is off still gets answers.
	skew        atomic.Int64
	correctSkew bool
}

// Request is what one operation sends, the same at every attempt.
type Request struct {
	Method string
	// Path and Query are below the endpoint's URL.
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Anonymous requests are sent unsigned, as the SDK sends STS's
	// AssumeRoleWithWebIdentity and the SSO portal's calls.
	Anonymous bool
}

// Decode reads one response: the operation's output when the status says
// success, else the service's error as a smithy.APIError (or a
// smithy.DeserializationError when the body cannot be read).
type Decode func(resp *http.Response, body []byte) error

// NewCaller builds the caller of svc from cfg for endpoint (empty for
// AWS's own), retried as cfg says (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, a
// Retryer) with the SDK's standard retryer by default. retryCodes are
// error codes the service's own SDK client retries too.
func NewCaller(cfg aws.Config, endpoint string, svc Service, retryCodes ...string) (*Caller, error) {
	raw, region, err := ResolveEndpoint(cfg, endpoint, svc)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	return &Caller{
		svc:         svc,
		url:         u,
		region:      region,
		creds:       cfg.Credentials,
		http:        httpClient(cfg),
		retry:       retryer(cfg, retryCodes),
		signer:      v4.NewSigner(),
		correctSkew: !cfg.DisableClockSkewCorrection,
	}, nil
}

// httpClient is cfg's, with the connect and TLS timeouts of its defaults
// mode (AWS_DEFAULTS_MODE) when it is the SDK's buildable client, as every
// SDK client applies them; the legacy default sets none and shares the
// client, and its connections, as it is.
func httpClient(cfg aws.Config) aws.HTTPClient {
	client := cfg.HTTPClient
	if client == nil {
		client = awshttp.NewBuildableClient()
	}
	buildable, ok := client.(*awshttp.BuildableClient)
	if !ok {
		return client
	}
	var mode aws.DefaultsMode
	mode.SetFromString(string(cfg.DefaultsMode))
	if mode == aws.DefaultsModeAuto {
		mode = defaults.ResolveDefaultsModeAuto(cfg.Region, cfg.RuntimeEnvironment)
	}
	modeConfig, err := defaults.GetModeConfiguration(mode)
	if err != nil {
		return buildable
	}
	if d, ok := modeConfig.GetConnectTimeout(); ok {
		buildable = buildable.WithDialerOptions(func(dialer *net.Dialer) { dialer.Timeout = d })
	}
	if d, ok := modeConfig.GetTLSNegotiationTimeout(); ok {
		buildable = buildable.WithTransportOptions(func(t *http.Transport) { t.TLSHandshakeTimeout = d })
	}
	return buildable
}

// retryer is the one an SDK client made from cfg would use.
func retryer(cfg aws.Config, codes []string) aws.RetryerV2 {
	var r aws.Retryer
	switch {
	case cfg.Retryer != nil:
		r = cfg.Retryer()
	case cfg.RetryMode == aws.RetryModeAdaptive:
		r = retry.NewAdaptiveMode()
	default:
		r = retry.NewStandard()
	}
	if cfg.RetryMaxAttempts != 0 {
		r = retry.AddWithMaxAttempts(r, cfg.RetryMaxAttempts)
	}
	if len(codes) > 0 {
		r = retry.AddWithErrorCodes(r, codes...)
	}
	if v2, ok := r.(aws.RetryerV2); ok {
		return v2
	}
	return retryerV2{r}
}

// retryerV2 adapts a Retryer of the older interface, as the SDK does.
type retryerV2 struct{ aws.Retryer }

func (r retryerV2) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}

// Do makes one operation op: req at every attempt, each response read by
// decode.
func (c *Caller) Do(ctx context.Context, op string, req Request, decode Decode) error {
	if err := c.attempts(ctx, req, decode); err != nil {
		return &smithy.OperationError{ServiceID: c.svc.ID, OperationName: op, Err: err}
	}
	return nil
}

// attempts is the SDK's retry loop (aws/retry's Attempt middleware): the
// retryer's tokens, its judgement of each error, its delays, its limit of
// attempts, X-Amz-Retry-After, and the clock skew correction.
func (c *Caller) attempts(ctx context.Context, req Request, decode Decode) error {
	maxAttempts := c.retry.MaxAttempts()
	releaseRetry := func(error) error { return nil }
	var skew time.Duration
	if c.correctSkew {
		skew = time.Duration(c.skew.Load())
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		releaseAttempt, err := c.retry.GetAttemptToken(ctx)
		if err != nil {
			return fmt.Errorf("failed to get retry Send token, %w", err)
		}
		measured, measuredOK, callErr := c.send(ctx, req, skew, decode)
		if measuredOK && c.correctSkew {
			c.skew.Store(int64(measured))
		}
		if err := releaseRetry(callErr); err != nil && callErr != nil {
			return fmt.Errorf("failed to release retry token after request error, %w", callErr)
		}
		if err := releaseAttempt(callErr); err != nil && callErr != nil {
			return fmt.Errorf("failed to release initial token after request error, %w", callErr)
		}
		if callErr != nil && c.correctSkew && measuredOK && skewCodes[errorCode(callErr)] && (skew-measured).Abs() > skewThreshold {
			callErr = &clockSkewError{callErr}
		}
		if callErr == nil || !c.retry.IsErrorRetryable(callErr) {
			return callErr
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return &retry.MaxAttemptsError{Attempt: attempt, Err: callErr}
		}
		releaseRetry, err = c.retry.GetRetryToken(ctx, callErr)
		if err != nil {
			return errors.Join(callErr, err)
		}
		delay, err := c.retry.RetryDelay(attempt, callErr)
		if err != nil {
			return err
		}
		if err := providers.Sleep(ctx, retryAfter(delay, callErr)); err != nil {
			return &aws.RequestCanceledError{Err: err}
		}
		skew = 0
		if measuredOK {
			skew = measured
		}
	}
}

// skewCodes are the error codes a skewed clock can cause, retried only
// when the server's Date says the clocks are far apart (aws/retry's
// clockSkewCodes).
var skewCodes = map[string]bool{
	"InvalidSignatureException": true,
	"SignatureDoesNotMatch":     true,
	"AuthFailure":               true,
	"RequestTimeTooSkewed":      true,
	"AccessDeniedException":     true,
}

// clockSkewError marks an error as worth one more attempt, signed at the
// server's time.
type clockSkewError struct{ err error }

func (e *clockSkewError) Error() string        { return "probable clock skew error: " + e.err.Error() }
func (e *clockSkewError) Unwrap() error        { return e.err }
func (e *clockSkewError) RetryableError() bool { return true }

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// retryAfter honours X-Amz-Retry-After (milliseconds) within the SDK's
// bounds: never less than the retryer's delay, at most 5 s more.
func retryAfter(delay time.Duration, err error) time.Duration {
	var resp *smithyhttp.ResponseError
	if !errors.As(err, &resp) || resp.Response == nil || resp.Response.Response == nil {
		return delay
	}
	ms, perr := strconv.ParseInt(resp.Response.Header.Get("X-Amz-Retry-After"), 10, 64)
	if perr != nil || ms < 0 {
		return delay
	}
	return min(max(time.Duration(ms)*time.Millisecond, delay), delay+5*time.Second)
}

// send makes one attempt, signed at our clock plus skew. It reports the
// skew the response's Date header shows, if it has one.
func (c *Caller) send(ctx context.Context, r Request, skew time.Duration, decode Decode) (time.Duration, bool, error) {
	u := *c.url
	if r.Path != "" {
		u.Path = smithyhttp.JoinPath(u.Path, r.Path)
		u.RawPath = ""
	}
	if len(r.Query) > 0 {
		u.RawQuery = r.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return 0, false, err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "secretrun")
	if !r.Anonymous {
		if c.creds == nil {
			return 0, false, errors.New("no AWS credentials provider")
		}
		creds, err := c.creds.Retrieve(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("get identity: %w", err)
		}
		sum := sha256.Sum256(r.Body)
		if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), c.svc.SigningName, c.region, time.Now().Add(skew)); err != nil {
			return 0, false, fmt.Errorf("sign request: %w", err)
		}
	}

	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false, &smithy.CanceledError{Err: ctx.Err()}
		}
		return 0, false, &smithyhttp.RequestSendError{Err: err}
	}
	received := time.Now()
	defer resp.Body.Close()
	var measured time.Duration
	date, dateErr := http.ParseTime(resp.Header.Get("Date"))
	if dateErr == nil {
		measured = date.Sub(received)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		err = &smithy.DeserializationError{Err: fmt.Errorf("read response body: %w", err)}
	} else {
		err = decode(resp, data)
	}
	if err != nil {
		err = &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: err},
			RequestID:     first(resp.Header.Get("X-Amzn-Requestid"), resp.Header.Get("X-Amz-Request-Id")),
		}
	}
	return measured, dateErr == nil, err
}

func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

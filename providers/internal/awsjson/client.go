// Package awsjson speaks the AWS JSON 1.1 protocol (Parameter Store,
// Secrets Manager) for the few calls each provider makes, signed and
// retried as the SDK's own clients do. The SDK's service packages would
// cost every start of secretrun, whether or not its config reads them,
// their package init: the schemas of every operation of the service and
// its endpoint rules (about 1.5 ms and 7 900 allocations for SSM).
package awsjson

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/defaults"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Service names what differs between the services a Client speaks to.
type Service struct {
	// ID is the SDK's service ID: it names the service in errors and in
	// the shared config's `services` section.
	ID string
	// SigningName is the SigV4 service name, and the first label of the
	// service's endpoints.
	SigningName string
	// TargetPrefix comes before the operation in X-Amz-Target.
	TargetPrefix string
	// GovCloudFIPSIsRegular is set for the services whose GovCloud FIPS
	// endpoints are their regular ones, as the SDK's rules for SSM say.
	GovCloudFIPSIsRegular bool
	// DualStackIsRegular names the partitions whose regular endpoints
	// already are dual-stack, as the SDK's rules for Secrets Manager say,
	// and FIPSDualStackIsRegular those whose FIPS endpoints are.
	DualStackIsRegular, FIPSDualStackIsRegular []string
}

// Client calls one service. Its errors have the SDK's shapes
// (smithy.OperationError around awshttp.ResponseError around
// smithy.GenericAPIError, or smithyhttp.RequestSendError,
// retry.MaxAttemptsError), so that the retryer and awsconf.Classify treat
// them as they treat any SDK client's.
type Client struct {
	svc    Service
	url    string
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

const (
	// ContentType is that of AWS JSON 1.1 requests and answers.
	ContentType = "application/x-amz-json-1.1"
	// skewThreshold is how far the clocks must disagree before an error
	// that a skew can cause is retried with the server's time, as in the
	// SDK.
	skewThreshold = 4 * time.Minute
)

// New builds the client of svc from cfg for endpoint (empty for AWS's
// own), retried as cfg says (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, a Retryer)
// with the SDK's standard retryer by default.
func New(cfg aws.Config, endpoint string, svc Service) (*Client, error) {
	u, region, err := ResolveEndpoint(cfg, endpoint, svc)
	if err != nil {
		return nil, err
	}
	return &Client{
		svc:         svc,
		url:         u,
		region:      region,
		creds:       cfg.Credentials,
		http:        httpClient(cfg),
		retry:       retryer(cfg),
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
func retryer(cfg aws.Config) aws.RetryerV2 {
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

// Call makes one operation: in is its request, out receives its answer.
func (a *Client) Call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return &smithy.OperationError{ServiceID: a.svc.ID, OperationName: op, Err: &smithy.SerializationError{Err: err}}
	}
	if err := a.attempts(ctx, op, body, out); err != nil {
		return &smithy.OperationError{ServiceID: a.svc.ID, OperationName: op, Err: err}
	}
	return nil
}

// attempts is the SDK's retry loop (aws/retry's Attempt middleware): the
// retryer's tokens, its judgement of each error, its delays, its limit of
// attempts, X-Amz-Retry-After, and the clock skew correction.
func (a *Client) attempts(ctx context.Context, op string, body []byte, out any) error {
	maxAttempts := a.retry.MaxAttempts()
	releaseRetry := func(error) error { return nil }
	var skew time.Duration
	if a.correctSkew {
		skew = time.Duration(a.skew.Load())
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		releaseAttempt, err := a.retry.GetAttemptToken(ctx)
		if err != nil {
			return fmt.Errorf("failed to get retry Send token, %w", err)
		}
		measured, measuredOK, callErr := a.send(ctx, op, body, skew, out)
		if measuredOK && a.correctSkew {
			a.skew.Store(int64(measured))
		}
		if err := releaseRetry(callErr); err != nil && callErr != nil {
			return fmt.Errorf("failed to release retry token after request error, %w", callErr)
		}
		if err := releaseAttempt(callErr); err != nil && callErr != nil {
			return fmt.Errorf("failed to release initial token after request error, %w", callErr)
		}
		if callErr != nil && a.correctSkew && measuredOK && skewCodes[errorCode(callErr)] && (skew-measured).Abs() > skewThreshold {
			callErr = &clockSkewError{callErr}
		}
		if callErr == nil || !a.retry.IsErrorRetryable(callErr) {
			return callErr
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return &retry.MaxAttemptsError{Attempt: attempt, Err: callErr}
		}
		releaseRetry, err = a.retry.GetRetryToken(ctx, callErr)
		if err != nil {
			return errors.Join(callErr, err)
		}
		delay, err := a.retry.RetryDelay(attempt, callErr)
		if err != nil {
			return err
		}
		if err := sleep(ctx, retryAfter(delay, callErr)); err != nil {
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

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send makes one attempt, signed at our clock plus skew. It reports the
// skew the response's Date header shows, if it has one.
func (a *Client) send(ctx context.Context, op string, body []byte, skew time.Duration, out any) (time.Duration, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("X-Amz-Target", a.svc.TargetPrefix+op)
	req.Header.Set("User-Agent", "secretrun")
	if a.creds == nil {
		return 0, false, errors.New("no AWS credentials provider")
	}
	creds, err := a.creds.Retrieve(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("get identity: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := a.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), a.svc.SigningName, a.region, time.Now().Add(skew)); err != nil {
		return 0, false, fmt.Errorf("sign request: %w", err)
	}

	resp, err := a.http.Do(req)
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
	switch {
	case err != nil:
		err = &smithy.DeserializationError{Err: fmt.Errorf("read response body: %w", err)}
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		err = apiError(resp.Header, data)
	default:
		if json.Unmarshal(data, out) != nil {
			err = notJSON("the "+op, data)
		}
	}
	if err != nil {
		err = &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: err},
			RequestID:     resp.Header.Get("X-Amzn-Requestid"),
		}
	}
	return measured, dateErr == nil, err
}

// apiError reads an AWS JSON error: the code from X-Amzn-ErrorType, else
// the body's __type (or code), without a namespace ("com.amazon#Code") or
// a suffix (":http://..."), as smithy-go's awsjson protocol does. A body
// that is not JSON is a deserialization error, as in the SDK.
func apiError(h http.Header, data []byte) error {
	var info struct {
		Type    string `json:"__type"`
		Message string
		Code    any
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&info); err != nil && err != io.EOF {
		return notJSON("an error", data)
	}
	code := "UnknownError"
	if c, ok := info.Code.(string); ok && c != "" {
		code = c
	}
	if info.Type != "" {
		code = info.Type
	}
	if c := h.Get("X-Amzn-Errortype"); c != "" {
		code = c
	}
	if i := strings.Index(code, ":"); i >= 0 {
		code = code[:i]
	}
	if i := strings.Index(code, "#"); i >= 0 {
		code = code[i+1:]
	}
	return &smithy.GenericAPIError{Code: code, Message: info.Message}
}

// notJSON says that a body could not be read, without quoting the
// decoder's complaint: that names a character of the body, which can be
// part of a value.
func notJSON(what string, data []byte) error {
	return &smithy.DeserializationError{Err: fmt.Errorf("%s response is not the JSON expected (%d bytes)", what, len(data))}
}

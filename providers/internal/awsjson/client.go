// Package awsjson speaks the AWS JSON 1.1 protocol (Parameter Store,
// Secrets Manager) for the few calls each provider makes, signed and
// retried as the SDK's own clients do; its Caller does the same in the
// other protocols of the calls awsconf makes for credentials (STS, the
// SSO portal). The SDK's service packages would cost every start of
// secretrun, whether or not its config reads them, their package init:
// the schemas of every operation of the service and its endpoint rules
// (about 1.5 ms and 7 900 allocations for SSM).
package awsjson

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// Service names what differs between the services a Client speaks to.
type Service struct {
	// ID is the SDK's service ID: it names the service in errors and in
	// the shared config's `services` section.
	ID string
	// SigningName is the SigV4 service name, and the first label of the
	// service's endpoints unless HostPrefix names others.
	SigningName string
	// HostPrefix, when set, comes before the region in the service's
	// endpoints instead of SigningName: "portal.sso" for SSO.
	HostPrefix string
	// GlobalHost, when set, is the endpoint of the aws-global
	// pseudo-region, signed for us-east-1: sts.amazonaws.com for STS.
	GlobalHost string
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

// Client calls one service over AWS JSON 1.1. Its errors have the SDK's
// shapes (see Caller), so that the retryer and awsconf.Classify treat them
// as they treat any SDK client's.
type Client struct {
	caller *Caller
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
	c, err := NewCaller(cfg, endpoint, svc)
	if err != nil {
		return nil, err
	}
	return &Client{caller: c}, nil
}

// Call makes one operation: in is its request, out receives its answer.
func (a *Client) Call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return &smithy.OperationError{ServiceID: a.caller.svc.ID, OperationName: op, Err: &smithy.SerializationError{Err: err}}
	}
	req := Request{
		Method: http.MethodPost,
		Header: http.Header{"Content-Type": {ContentType}, "X-Amz-Target": {a.caller.svc.TargetPrefix + op}},
		Body:   body,
	}
	return a.caller.Do(ctx, op, req, func(resp *http.Response, data []byte) error {
		if resp.StatusCode < 200 || resp.StatusCode >= 300 {
			return APIError(resp.Header, data)
		}
		if json.Unmarshal(data, out) != nil {
			return notJSON("the "+op, data)
		}
		return nil
	})
}

// APIError reads an AWS JSON (1.1 or REST) error: the code from
// X-Amzn-ErrorType, else the body's __type (or code), without a namespace
// ("com.amazon#Code") or a suffix (":http://..."), as smithy-go's awsjson
// protocol does. A body that is not JSON is a deserialization error, as
// in the SDK.
func APIError(h http.Header, data []byte) error {
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

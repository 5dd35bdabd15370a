package awsconf

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// stsService is STS as the SDK's endpoint rules for it have it: aws-global
// is sts.amazonaws.com, signed for us-east-1, and GovCloud's FIPS
// endpoints are its regular ones.
var stsService = awsjson.Service{
	ID:                    "STS",
	SigningName:           "sts",
	GlobalHost:            "sts.amazonaws.com",
	GovCloudFIPSIsRegular: true,
}

// defaultRoleDuration is the SDK's default for AssumeRole, and the least
// duration it asks for.
const defaultRoleDuration = 15 * time.Minute

// stsClient calls STS in its query protocol as the SDK's client made from
// cfg would, at endpoint ("" for AWS's own). The caller is made at each
// call, so that a configuration STS cannot be called with (no region)
// fails the call, as in the SDK, not the loading.
type stsClient struct {
	cfg      aws.Config
	endpoint string
}

// stsCredentials are the part of an AssumeRole* result the SDK's providers
// read.
type stsCredentials struct {
	Credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string
		SessionToken    string
		Expiration      string
	}
	AssumedRoleUser struct {
		Arn string
	}
}

// call makes action with params. retryCodes are error codes retried
// besides the retryer's own, as the SDK's STS client retries
// IDPCommunicationError.
func (s stsClient) call(ctx context.Context, action string, params url.Values, anonymous bool, retryCodes ...string) (stsCredentials, error) {
	var out stsCredentials
	c, err := awsjson.NewCaller(s.cfg, s.endpoint, stsService, append(retryCodes, "IDPCommunicationError")...)
	if err != nil {
		return out, &smithy.OperationError{ServiceID: stsService.ID, OperationName: action, Err: err}
	}
	params.Set("Action", action)
	params.Set("Version", "2011-06-15")
	req := awsjson.Request{
		Method:    http.MethodPost,
		Header:    http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:      []byte(params.Encode()),
		Anonymous: anonymous,
	}
	err = c.Do(ctx, action, req, func(resp *http.Response, body []byte) error {
		if resp.StatusCode < 200 || resp.StatusCode >= 300 {
			return queryError(body)
		}
		if err := decodeElement(body, action+"Result", &out); err != nil {
			return &smithy.DeserializationError{Err: fmt.Errorf("the %s response is not the XML expected (%d bytes)", action, len(body))}
		}
		return nil
	})
	return out, err
}

// queryError reads the error of a query protocol answer as the SDK does:
// an empty body is an UnknownError, one that is not XML cannot be read.
func queryError(body []byte) error {
	var e struct{ Code, Message string }
	if err := decodeElement(body, "Error", &e); err != nil && !errors.Is(err, io.EOF) {
		return &smithy.DeserializationError{Err: fmt.Errorf("the error response is not the XML expected (%d bytes)", len(body))}
	}
	code := First(e.Code, "UnknownError")
	return &smithy.GenericAPIError{Code: code, Message: First(e.Message, code)}
}

// decodeElement decodes the first element named name, wherever it is.
func decodeElement(body []byte, name string, out any) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if start, ok := tok.(xml.StartElement); ok && start.Name.Local == name {
			return d.DecodeElement(out, &start)
		}
	}
}

// credentials are what the call gave, as the SDK's providers make them.
func (r stsCredentials) credentials(source string) (aws.Credentials, error) {
	c := r.Credentials
	if c.AccessKeyID == "" {
		return aws.Credentials{}, errors.New("STS answered with no credentials")
	}
	expires, err := time.Parse(time.RFC3339, c.Expiration)
	if err != nil {
		return aws.Credentials{}, errors.New("STS answered with credentials of no readable expiry")
	}
	creds := aws.Credentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Source:          source,
		CanExpire:       true,
		Expires:         expires,
	}
	// The account is the fifth field of the role's ARN
	// (arn:aws:sts::123456789012:assumed-role/...).
	if parts := strings.Split(r.AssumedRoleUser.Arn, ":"); len(parts) >= 5 {
		creds.AccountID = parts[4]
	}
	return creds, nil
}

// assumeRole is the SDK's AssumeRoleProvider: the role's credentials,
// obtained with the credentials of cfg.
type assumeRole struct {
	sts         stsClient
	roleARN     string
	sessionName string
	externalID  string
	duration    time.Duration
	// of names where the role comes from in messages: a profile, or the
	// provider's settings.
	of string
}

func (a *assumeRole) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if a.sessionName == "" {
		// The SDK's name for a session no one named, kept for every
		// later call.
		a.sessionName = "aws-go-sdk-" + strconv.FormatInt(time.Now().UTC().UnixNano(), 10)
	}
	duration := a.duration
	if duration == 0 {
		duration = defaultRoleDuration
	}
	params := url.Values{
		"RoleArn":         {a.roleARN},
		"RoleSessionName": {a.sessionName},
		"DurationSeconds": {strconv.Itoa(int(duration / time.Second))},
	}
	if a.externalID != "" {
		params.Set("ExternalId", a.externalID)
	}
	out, err := a.sts.call(ctx, "AssumeRole", params, false)
	if err == nil {
		var creds aws.Credentials
		if creds, err = out.credentials("AssumeRoleProvider"); err == nil {
			return creds, nil
		}
	}
	return aws.Credentials{}, fmt.Errorf("assume role %s (%s): %w", a.roleARN, a.of, err)
}

// webIdentity is the SDK's WebIdentityRoleProvider: the role's credentials
// for the token in tokenFile, read at every call since whoever writes it
// (EKS, a CI runner) renews it.
type webIdentity struct {
	sts         stsClient
	roleARN     string
	tokenFile   string
	sessionName string
	of          string
}

func (w *webIdentity) Retrieve(ctx context.Context) (aws.Credentials, error) {
	token, err := os.ReadFile(w.tokenFile)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("web identity token (%s): %w", w.of, err)
	}
	name := w.sessionName
	if name == "" {
		name = strconv.FormatInt(time.Now().UnixNano(), 10)
	}
	params := url.Values{
		"RoleArn":          {w.roleARN},
		"RoleSessionName":  {name},
		"WebIdentityToken": {string(token)},
	}
	// The SDK sends this call unsigned, and retries a token the identity
	// provider has not yet published the keys of.
	out, err := w.sts.call(ctx, "AssumeRoleWithWebIdentity", params, true, "InvalidIdentityToken")
	if err == nil {
		var creds aws.Credentials
		if creds, err = out.credentials("WebIdentityCredentials"); err == nil {
			return creds, nil
		}
	}
	return aws.Credentials{}, fmt.Errorf("assume role %s with the web identity token %s (%s): %w", w.roleARN, w.tokenFile, w.of, err)
}

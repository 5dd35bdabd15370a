package awsconf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeAWS answers, for any host, what the credential chain asks of AWS:
// STS's AssumeRole and AssumeRoleWithWebIdentity, the SSO portal's
// GetRoleCredentials, SSO OIDC's CreateToken and, when instanceMetadata
// is set, EC2 instance metadata. Nothing leaves the machine. The
// credentials it gives tell what they were asked with (the role, the
// signer's key, the token), and it notes every call, so that two
// implementations can be compared call by call.
type fakeAWS struct {
	instanceMetadata bool
	instanceRegion   string

	mu    sync.Mutex
	calls []string
}

func (f *fakeAWS) client() *http.Client { return &http.Client{Transport: f} }

func (f *fakeAWS) note(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeAWS) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

var digits = regexp.MustCompile(`[0-9]{6,}`)

// signer is the key and scope a request was signed with, or "unsigned".
func signer(req *http.Request) string {
	auth := req.Header.Get("Authorization")
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "unsigned"
	}
	cred, _, _ = strings.Cut(cred, ",")
	// AKID/20240101/eu-west-1/sts/aws4_request: drop the date.
	parts := strings.Split(cred, "/")
	if len(parts) == 5 {
		return parts[0] + "/" + parts[2] + "/" + parts[3]
	}
	return cred
}

func (f *fakeAWS) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	host := req.URL.Host
	switch {
	case host == "169.254.169.254" || host == "[fd00:ec2::254]":
		return f.instance(req)
	case req.Method == http.MethodPost && strings.Contains(string(body), "Action="):
		form, _ := url.ParseQuery(string(body))
		return f.sts(req, form)
	case req.URL.Path == "/federation/credentials":
		return f.sso(req)
	case req.URL.Path == "/token" && req.Method == http.MethodPost:
		return f.oidc(req, body)
	}
	f.note("%s %s %s", host, req.Method, req.URL.Path)
	return respond(http.StatusNotFound, nil, ""), nil
}

func respond(status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func short(s string) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToUpper(hex.EncodeToString(sum[:4]))
}

func (f *fakeAWS) sts(req *http.Request, form url.Values) (*http.Response, error) {
	action := form.Get("Action")
	var params []string
	for k, v := range form {
		if k != "Action" && k != "Version" {
			params = append(params, k+"="+digits.ReplaceAllString(strings.Join(v, ","), "N"))
		}
	}
	slices.Sort(params)
	f.note("%s %s %s signed by %s", req.URL.Host, action, strings.Join(params, " "), signer(req))
	role := form.Get("RoleArn")
	if strings.Contains(role, "denied") {
		return respond(http.StatusForbidden, http.Header{"Content-Type": {"text/xml"}},
			`<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed to assume `+role+`</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`), nil
	}
	key := "ASIA" + short(role+"|"+signer(req)+"|"+form.Get("WebIdentityToken"))
	return respond(http.StatusOK, http.Header{"Content-Type": {"text/xml"}}, fmt.Sprintf(`<%[1]sResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <%[1]sResult>
    <Credentials>
      <AccessKeyId>%[2]s</AccessKeyId>
      <SecretAccessKey>secret-%[2]s</SecretAccessKey>
      <SessionToken>token-%[2]s</SessionToken>
      <Expiration>%[3]s</Expiration>
    </Credentials>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
  </%[1]sResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</%[1]sResponse>`, action, key, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))), nil
}

func (f *fakeAWS) sso(req *http.Request) (*http.Response, error) {
	token := req.Header.Get("X-Amz-Sso_bearer_token")
	q := req.URL.Query()
	f.note("%s %s %s account %s role %s token %s signed by %s", req.URL.Host, req.Method, req.URL.Path,
		q.Get("account_id"), q.Get("role_name"), token, signer(req))
	if token == "revoked" {
		return respond(http.StatusUnauthorized, http.Header{"X-Amzn-Errortype": {"UnauthorizedException"}},
			`{"message":"Session token not found or invalid"}`), nil
	}
	key := "ASIA" + short(q.Get("account_id")+"|"+q.Get("role_name")+"|"+token)
	return respond(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, fmt.Sprintf(
		`{"roleCredentials":{"accessKeyId":%q,"secretAccessKey":"secret-%s","sessionToken":"token-%s","expiration":%d}}`,
		key, key, key, time.Now().Add(time.Hour).UnixMilli())), nil
}

func (f *fakeAWS) oidc(req *http.Request, body []byte) (*http.Response, error) {
	var in map[string]string
	_ = json.Unmarshal(body, &in)
	f.note("%s CreateToken grant %s refresh %s client %s signed by %s", req.URL.Host, in["grantType"], in["refreshToken"], in["clientId"], signer(req))
	return respond(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, fmt.Sprintf(
		`{"accessToken":"refreshed-%s","expiresIn":3600,"refreshToken":"next-%s","tokenType":"Bearer"}`, in["refreshToken"], in["refreshToken"])), nil
}

func (f *fakeAWS) instance(req *http.Request) (*http.Response, error) {
	f.note("%s %s %s", req.URL.Host, req.Method, req.URL.Path)
	if !f.instanceMetadata {
		return respond(http.StatusNotFound, nil, ""), nil
	}
	switch p := req.URL.Path; {
	case p == "/latest/api/token" && req.Method == http.MethodPut:
		return respond(http.StatusOK, http.Header{"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": {"21600"}}, "imds-token"), nil
	case p == "/latest/meta-data/placement/region":
		return respond(http.StatusOK, nil, f.instanceRegion), nil
	case p == "/latest/meta-data/iam/security-credentials/":
		return respond(http.StatusOK, nil, "instance-role"), nil
	case p == "/latest/meta-data/iam/security-credentials/instance-role":
		return respond(http.StatusOK, nil, fmt.Sprintf(
			`{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAINSTANCE","SecretAccessKey":"secret-instance","Token":"token-instance","Expiration":%q}`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))), nil
	}
	return respond(http.StatusNotFound, nil, ""), nil
}

package awssm

import (
	"context"
	cryptorand "crypto/rand"

	smithyrand "github.com/aws/smithy-go/rand"

	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// smService is Secrets Manager as awsjson speaks to it: the SDK's
// service/secretsmanager would cost every start of secretrun, whether or
// not its config reads Secrets Manager, the package init of its schemas
// and endpoint rules. In the main, China and GovCloud partitions its
// regular endpoints are dual-stack already.
var smService = awsjson.Service{
	ID:                     "Secrets Manager",
	SigningName:            "secretsmanager",
	TargetPrefix:           "secretsmanager.",
	DualStackIsRegular:     []string{"aws", "aws-cn", "aws-us-gov"},
	FIPSDualStackIsRegular: []string{"aws", "aws-us-gov"},
}

// api is the client of Secrets Manager, with the calls the provider
// makes; the fields of each answer it has no use for are left out.
type api struct{ *awsjson.Client }

// secretValue is one version of a secret, as GetSecretValue and
// BatchGetSecretValue send it. SecretBinary is base64 in JSON, which
// encoding/json decodes into bytes.
type secretValue struct {
	ARN           string
	Name          string
	VersionId     string
	VersionStages []string
	SecretString  *string
	SecretBinary  []byte
}

type batchError struct {
	SecretId  string
	ErrorCode string
	Message   string
}

type batchPage struct {
	SecretValues []secretValue
	Errors       []batchError
	NextToken    string
}

func (a *api) batchGetSecretValue(ctx context.Context, ids []string, next string) (*batchPage, error) {
	var out batchPage
	err := a.Call(ctx, "BatchGetSecretValue", struct {
		SecretIdList []string
		NextToken    string `json:",omitempty"`
	}{ids, next}, &out)
	return &out, err
}

func (a *api) getSecretValue(ctx context.Context, id, versionID, stage string) (*secretValue, error) {
	var out secretValue
	err := a.Call(ctx, "GetSecretValue", struct {
		SecretId     string
		VersionId    string `json:",omitempty"`
		VersionStage string `json:",omitempty"`
	}{id, versionID, stage}, &out)
	return &out, err
}

// secretInfo is what DescribeSecret and ListSecrets tell of a secret.
// DeletedDate is set when the secret is scheduled for deletion; its value,
// epoch seconds, is of no use here.
type secretInfo struct {
	ARN         string
	Name        string
	DeletedDate *float64
	// VersionIdsToStages is DescribeSecret's name for the map,
	// SecretVersionsToStages ListSecrets'.
	VersionIdsToStages     map[string][]string
	SecretVersionsToStages map[string][]string
}

func (a *api) describeSecret(ctx context.Context, id string) (*secretInfo, error) {
	var out secretInfo
	err := a.Call(ctx, "DescribeSecret", struct{ SecretId string }{id}, &out)
	return &out, err
}

// listSecrets reads every page of the secrets whose names start with one
// of names, as the SDK's paginator does: until a page comes without a
// NextToken.
func (a *api) listSecrets(ctx context.Context, names []string, pageSize int32) ([]secretInfo, error) {
	type filter struct {
		Key    string
		Values []string
	}
	var all []secretInfo
	next := ""
	for {
		var out struct {
			SecretList []secretInfo
			NextToken  string
		}
		err := a.Call(ctx, "ListSecrets", struct {
			Filters    []filter
			MaxResults int32
			NextToken  string `json:",omitempty"`
		}{[]filter{{"name", names}}, pageSize, next}, &out)
		if err != nil {
			return nil, err
		}
		all = append(all, out.SecretList...)
		if out.NextToken == "" {
			return all, nil
		}
		next = out.NextToken
	}
}

// requestToken is the idempotency token a write must carry outside the
// SDK, which makes one for each call: one per call, not per attempt, so
// that a retried write makes one version.
func requestToken() (string, error) {
	return smithyrand.NewUUIDIdempotencyToken(cryptorand.Reader).GetIdempotencyToken()
}

func (a *api) putSecretValue(ctx context.Context, id, text string) error {
	token, err := requestToken()
	if err != nil {
		return err
	}
	var out struct{}
	return a.Call(ctx, "PutSecretValue", struct {
		SecretId           string
		SecretString       string
		ClientRequestToken string
	}{id, text, token}, &out)
}

func (a *api) createSecret(ctx context.Context, name, text string) error {
	token, err := requestToken()
	if err != nil {
		return err
	}
	var out struct{}
	return a.Call(ctx, "CreateSecret", struct {
		Name               string
		SecretString       string
		ClientRequestToken string
	}{name, text, token}, &out)
}

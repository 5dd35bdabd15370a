package awsssm

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

// client returns the instance's one SDK client, building it on first use.
// A failed build is not remembered, so a later call can succeed.
func (p *provider) client(ctx context.Context) (*conn, error) {
	return p.conn.Get(func() (*conn, error) {
		l, err := p.Load(ctx, p.String(), "AWS_ENDPOINT_URL_SSM")
		if err != nil {
			return nil, err
		}
		client := ssm.NewFromConfig(l.Config, func(o *ssm.Options) {
			if l.Endpoint != "" {
				o.BaseEndpoint = aws.String(l.Endpoint)
			}
		})
		return &conn{ssm: client, loaded: l}, nil
	})
}

// where names the region, and the endpoint when it is not AWS's own.
func (c *conn) where() string { return c.loaded.Where() }

// ssmCodes maps the error codes of Parameter Store's own; awsconf maps
// those every AWS service shares. AWS's messages name the parameter or the
// caller, never a value.
func ssmCodes(code, detail string) error {
	msg := code
	if detail != "" {
		msg += ": " + detail
	}
	switch code {
	case "ParameterNotFound", "ParameterVersionNotFound":
		return fmt.Errorf("%w (%s)", providers.ErrNotFound, msg)
	case "InvalidKeyId":
		return fmt.Errorf("%w: KMS could not decrypt the SecureString; the caller needs kms:Decrypt on its key, and the key must be enabled (%s)", providers.ErrDenied, msg)
	case "AccessDeniedException":
		if strings.Contains(strings.ToLower(detail), "kms") {
			return fmt.Errorf("%w: KMS refused to decrypt the SecureString; the caller needs kms:Decrypt on its key (%s)", providers.ErrDenied, msg)
		}
	}
	return nil
}

// classify turns an error of an SDK call into one that wraps the right
// sentinel.
func classify(ctx context.Context, err error) error { return awsconf.Classify(ctx, err, ssmCodes) }

func wholeBackend(err error) bool { return awsconf.WholeBackend(err) }

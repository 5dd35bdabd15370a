package awssm

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

// client returns the instance's one SDK client, building it on first use.
// A failed build is not remembered, so a later call can succeed.
func (p *provider) client(ctx context.Context) (*conn, error) {
	return p.conn.Get(func() (*conn, error) {
		l, err := p.Load(ctx, p.String(), "AWS_ENDPOINT_URL_SECRETS_MANAGER")
		if err != nil {
			return nil, err
		}
		sm := secretsmanager.NewFromConfig(l.Config, func(o *secretsmanager.Options) {
			if l.Endpoint != "" {
				o.BaseEndpoint = aws.String(l.Endpoint)
			}
		})
		return &conn{sm: sm, loaded: l}, nil
	})
}

// where names the region, and the endpoint when it is not AWS's own.
func (c *conn) where() string { return c.loaded.Where() }

func (p *provider) String() string { return fmt.Sprintf("%s %q", TypeName, p.name) }

func first(values ...string) string { return awsconf.First(values...) }

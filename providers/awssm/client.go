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
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		return p.conn, nil
	}
	l, err := awsconf.Load(ctx, awsconf.Request{
		Who:              p.String(),
		Settings:         p.set,
		Env:              p.env,
		EndpointVariable: "AWS_ENDPOINT_URL_SECRETS_MANAGER",
		Hooks:            awsconf.Hooks{HTTPClient: p.hooks.httpClient, APIOptions: p.hooks.apiOptions},
	})
	if err != nil {
		return nil, err
	}
	sm := secretsmanager.NewFromConfig(l.Config, func(o *secretsmanager.Options) {
		if l.Endpoint != "" {
			o.BaseEndpoint = aws.String(l.Endpoint)
		}
	})
	p.conn = &conn{sm: sm, region: l.Config.Region, endpoint: l.Endpoint}
	return p.conn, nil
}

func (p *provider) String() string { return fmt.Sprintf("%s %q", TypeName, p.name) }

func first(values ...string) string { return awsconf.First(values...) }

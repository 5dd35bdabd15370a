package awssm

import (
	"context"
	"fmt"

	"github.com/secretrun/secretrun/providers/internal/awsconf"
	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// client returns the instance's one client, building it on first use.
// A failed build is not remembered, so a later call can succeed.
func (p *provider) client(ctx context.Context) (*conn, error) {
	return p.conn.Get(func() (*conn, error) {
		l, err := p.Load(ctx, p.String(), "AWS_ENDPOINT_URL_SECRETS_MANAGER")
		if err != nil {
			return nil, err
		}
		c, err := awsjson.New(l.Config, l.Endpoint, smService)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return &conn{sm: &api{c}, loaded: l}, nil
	})
}

// where names the region, and the endpoint when it is not AWS's own.
func (c *conn) where() string { return c.loaded.Where() }

func (p *provider) String() string { return fmt.Sprintf("%s %q", TypeName, p.name) }

func first(values ...string) string { return awsconf.First(values...) }

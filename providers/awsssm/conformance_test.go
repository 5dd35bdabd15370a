package awsssm

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/secretrun/secretrun/providers/internal/awsconf"
	"github.com/secretrun/secretrun/providers/providertest"
)

// TestConformance runs the suite on path sources: a secret of the suite is
// a hierarchy with one SecureString per field.
func TestConformance(t *testing.T) {
	srv := moto.Get(t)
	p := newTest(t, "region: eu-west-1", srv.Env(), awsconf.Hooks{})
	providertest.Run(t, providertest.Backend{
		Provider: p,
		Name:     "ssm",
		Put: func(t *testing.T, name string, fields map[string]string) string {
			path := "/conformance/" + name
			// Replacing the secret drops the fields it no longer has.
			old, err := srv.SSM().GetParametersByPath(context.Background(), &ssm.GetParametersByPathInput{Path: aws.String(path)})
			if err != nil {
				t.Fatal(err)
			}
			for _, prm := range old.Parameters {
				if _, keep := fields[aws.ToString(prm.Name)[len(path)+1:]]; !keep {
					srv.DeleteParameter(t, aws.ToString(prm.Name))
				}
			}
			for k, v := range fields {
				srv.PutParameter(t, path+"/"+k, v, secure)
			}
			return "path: " + path
		},
		Missing: func(t *testing.T) string { return "path: /conformance/does-not-exist" },
	})
}

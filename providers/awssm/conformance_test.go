package awssm

import (
	"encoding/json"
	"testing"

	"github.com/secretrun/secretrun/providers/internal/awsconf"
	"github.com/secretrun/secretrun/providers/providertest"
)

func TestConformance(t *testing.T) {
	srv := moto.Get(t)
	p := newTest(t, "region: "+"eu-west-1", srv.Env(), awsconf.Hooks{})
	providertest.Run(t, providertest.Backend{
		Provider: p,
		Name:     "aws",
		Put: func(t *testing.T, name string, fields map[string]string) string {
			text, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			srv.PutString(t, "conformance/"+name, string(text))
			return "secret: conformance/" + name
		},
		Missing: func(t *testing.T) string { return "secret: conformance/does-not-exist" },
	})
}

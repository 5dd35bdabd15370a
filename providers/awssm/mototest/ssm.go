package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// SSM returns an SDK client for the server's Systems Manager, for tests to
// arrange parameters with.
func (s *Server) SSM() *ssm.Client {
	return ssm.New(ssm.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	})
}

// PutParameter stores a new version of a parameter of type typ, creating
// it if needed, and returns the version number.
func (s *Server) PutParameter(t testing.TB, name, value string, typ ssmtypes.ParameterType) int64 {
	t.Helper()
	out, err := s.SSM().PutParameter(context.Background(), &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("put parameter %s: %v", name, err)
	}
	return out.Version
}

// LabelParameter attaches labels to one version of a parameter; a label
// moves from the version that had it.
func (s *Server) LabelParameter(t testing.TB, name string, version int64, labels ...string) {
	t.Helper()
	out, err := s.SSM().LabelParameterVersion(context.Background(), &ssm.LabelParameterVersionInput{
		Name: aws.String(name), ParameterVersion: aws.Int64(version), Labels: labels,
	})
	if err != nil {
		t.Fatalf("label parameter %s version %d: %v", name, version, err)
	}
	if len(out.InvalidLabels) > 0 {
		t.Fatalf("label parameter %s version %d: invalid labels %v", name, version, out.InvalidLabels)
	}
}

// DeleteParameter deletes a parameter and all its versions.
func (s *Server) DeleteParameter(t testing.TB, name string) {
	t.Helper()
	if _, err := s.SSM().DeleteParameter(context.Background(), &ssm.DeleteParameterInput{Name: aws.String(name)}); err != nil {
		t.Fatalf("delete parameter %s: %v", name, err)
	}
}

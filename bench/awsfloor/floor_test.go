package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/secretrun/secretrun/providers/awssm/mototest"
)

var moto mototest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	moto.Stop()
	os.Exit(code)
}

// The floor delivers what the tools it is timed beside deliver: a Secrets
// Manager secret's keys, and every parameter below a path, across pages.
func TestFloorStartsTheChildWithTheSecrets(t *testing.T) {
	srv := moto.Get(t)
	bin := build(t)
	env := []string{"PATH=/usr/bin:/bin"}
	for k, v := range srv.Env() {
		env = append(env, k+"="+v)
	}
	run := func(service, target, body string) string {
		t.Helper()
		cmd := exec.Command(bin, service, target, body, "--", "env")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		return string(out)
	}

	srv.CreateString(t, "floor/sm", `{"F0":"sm-zero","F1":"sm-one"}`)
	got := run("secretsmanager", "secretsmanager.GetSecretValue", `{"SecretId":"floor/sm"}`)
	for _, want := range []string{"F0=sm-zero\n", "F1=sm-one\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("Secrets Manager: the child's environment lacks %q:\n%s", want, got)
		}
	}

	client := ssm.New(ssm.Options{
		Region: mototest.Region, BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(mototest.AccessKeyID, mototest.SecretAccessKey, ""),
	})
	const params = 12 // more than a page of ten
	for i := range params {
		if _, err := client.PutParameter(context.Background(), &ssm.PutParameterInput{
			Name: aws.String(fmt.Sprintf("/floor/ssm/P%d", i)), Value: aws.String(fmt.Sprintf("ssm-%d", i)),
			Type: ssmtypes.ParameterTypeSecureString,
		}); err != nil {
			t.Fatal(err)
		}
	}
	got = run("ssm", "AmazonSSM.GetParametersByPath", `{"Path":"/floor/ssm","Recursive":true,"WithDecryption":true,"MaxResults":10}`)
	for i := range params {
		if want := fmt.Sprintf("P%d=ssm-%d\n", i, i); !strings.Contains(got, want) {
			t.Errorf("Parameter Store: the child's environment lacks %q:\n%s", want, got)
		}
	}
}

// A refused call starts no child.
func TestFloorFailsWithoutTheSecret(t *testing.T) {
	srv := moto.Get(t)
	bin := build(t)
	cmd := exec.Command(bin, "secretsmanager", "secretsmanager.GetSecretValue", `{"SecretId":"floor/none"}`, "--", "echo", "started")
	for k, v := range srv.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err == nil || strings.Contains(string(out), "started") {
		t.Errorf("a missing secret: err %v, child output %q", err, out)
	}
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "awsfloor")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

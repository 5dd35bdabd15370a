//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/hashicorp/vault/api"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/secretrun/secretrun/providers/awssm/mototest"
)

// TestImportScripts runs the scripts in testdata/import: `secretrun import`
// moves a .env file into the real OS keyring, a real Vault (KV v1 and v2),
// and Secrets Manager and Parameter Store on moto, edits secretrun.yaml in
// place, and the values then reach a child; with real git repositories for
// the history warning.
func TestImportScripts(t *testing.T) {
	keyringErr := probeKeyring()
	if keyringErr != nil && os.Getenv("CI") == "true" {
		t.Fatalf("the OS keyring is required under CI=true: %v", keyringErr)
	}
	_, gitErr := exec.LookPath("git")
	if gitErr != nil && os.Getenv("CI") == "true" {
		t.Fatalf("git is required under CI=true: %v", gitErr)
	}
	var moto struct {
		once sync.Once
		srv  *mototest.Server
		err  error
	}
	t.Cleanup(func() {
		if moto.srv != nil {
			moto.srv.Stop()
		}
	})

	p := serverScripts(t, "testdata/import")
	setup, condition := p.Setup, p.Condition
	p.Setup = func(env *testscript.Env) error {
		if err := setup(env); err != nil {
			return err
		}
		for _, v := range []string{"DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"} {
			env.Setenv(v, os.Getenv(v))
		}
		env.Setenv("KEYRING_HOME", os.Getenv("HOME"))
		for _, v := range []string{"GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"} {
			env.Setenv(v, "Dev")
		}
		for _, v := range []string{"GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"} {
			env.Setenv(v, "dev@example.invalid")
		}
		env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
		return nil
	}
	p.Condition = func(cond string) (bool, error) {
		switch cond {
		case "keyring":
			return keyringErr == nil, nil
		case "git":
			return gitErr == nil, nil
		case "moto":
			// A server of this test's own, so that its SSM client is at hand.
			moto.once.Do(func() { moto.srv, moto.err = mototest.Start() })
			if moto.err != nil && os.Getenv("CI") == "true" {
				return false, fmt.Errorf("moto is required under CI=true: %v", moto.err)
			}
			return moto.err == nil, nil
		}
		return condition(cond)
	}
	p.Cmds["moto"] = func(ts *testscript.TestScript, neg bool, args []string) { cmdMoto(ts, neg, args, moto.srv) }
	p.Cmds["vaultkv1"] = cmdVaultKV1
	testscript.Run(t, p)
}

// moto env|param NAME|deny NAME drives the test's moto: export the
// variables that point the AWS SDK at it with static credentials; print a
// parameter's type and version (never its value); or start a proxy in
// front of it, its URL in $DENY_URL, that refuses to put the parameter
// NAME as an IAM policy denying it would, and passes everything else.
func cmdMoto(ts *testscript.TestScript, neg bool, args []string, srv *mototest.Server) {
	const usage = "usage: moto env|param NAME|deny NAME (needs [moto])"
	if neg || len(args) < 1 || srv == nil {
		ts.Fatalf(usage)
	}
	switch {
	case args[0] == "env" && len(args) == 1:
		for k, v := range srv.Env() {
			ts.Setenv(k, v)
		}
	case args[0] == "param" && len(args) == 2:
		out, err := srv.SSM().GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(args[1])})
		ts.Check(err)
		fmt.Fprintf(ts.Stdout(), "type=%s version=%d\n", out.Parameter.Type, out.Parameter.Version)
	case args[0] == "deny" && len(args) == 2:
		ts.Setenv("DENY_URL", denyProxy(ts, srv.URL, args[1]))
	default:
		ts.Fatalf(usage)
	}
}

// denyProxy answers PutParameter of one name with AccessDeniedException,
// in the JSON shape AWS gives it, and forwards every other request.
func denyProxy(ts *testscript.TestScript, target, name string) string {
	u, err := url.Parse(target)
	ts.Check(err)
	forward := httputil.NewSingleHostReverseProxy(u)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var put struct{ Name string }
		if r.Header.Get("X-Amz-Target") == "AmazonSSM.PutParameter" && json.Unmarshal(body, &put) == nil && put.Name == name {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/dev is not authorized to perform: ssm:PutParameter on resource: arn:aws:ssm:eu-west-1:123456789012:parameter%s with an explicit deny in an identity-based policy"}`, name)
			return
		}
		forward.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	ts.Defer(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// vaultkv1 PATH mounts a KV version 1 secrets engine at PATH in the
// script's Vault.
func cmdVaultKV1(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: vaultkv1 PATH")
	}
	c, err := ts.Value(vaultKey{}).(*scriptVault).client()
	ts.Check(err)
	ts.Check(c.Sys().Mount(args[0], &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}))
}

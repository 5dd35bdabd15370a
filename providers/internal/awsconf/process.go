package awsconf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// processTimeout is the SDK's limit on a credential_process.
const processTimeout = time.Minute

// processCredentials runs a profile's credential_process as the SDK's
// processcreds does: through the shell, with secretrun's environment, its
// stdin and stderr (a process may ask for an MFA code), its stdout read
// as the credentials. Unlike processcreds, a reply it cannot read is not
// quoted in the message: it holds the keys.
type processCredentials struct {
	command string
	environ []string
	stderr  io.Writer
	profile string
}

func (p *processCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	fail := func(format string, args ...any) (aws.Credentials, error) {
		return aws.Credentials{}, fmt.Errorf("%s: credential_process: %w", p.profile, fmt.Errorf(format, args...))
	}
	if p.command == "" {
		return fail("no command")
	}
	ctx, cancel := context.WithTimeout(ctx, processTimeout)
	defer cancel()
	shell := []string{"sh", "-c"}
	if runtime.GOOS == "windows" {
		shell = []string{"cmd.exe", "/C"}
	}
	cmd := exec.CommandContext(ctx, shell[0], shell[1], p.command)
	cmd.Env = p.environ
	cmd.Stdin = os.Stdin
	cmd.Stderr = p.stderr
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fail("timed out after %v: %w", processTimeout, err)
		}
		return fail("%w", err)
	}
	data := out.Bytes()
	if runtime.GOOS == "windows" {
		data = bytes.ReplaceAll(data, []byte(`\"`), []byte(`"`))
	}
	var reply struct {
		Version         int
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string
		SessionToken    string
		Expiration      *time.Time
		AccountID       string `json:"AccountId"`
	}
	if json.Unmarshal(data, &reply) != nil {
		return fail("its output is not the JSON expected (%d bytes)", len(data))
	}
	switch {
	case reply.Version != 1:
		return fail("its output has Version %d, want 1", reply.Version)
	case reply.AccessKeyID == "":
		return fail("its output has no AccessKeyId")
	case reply.SecretAccessKey == "":
		return fail("its output has no SecretAccessKey")
	}
	creds := aws.Credentials{
		Source:          "ProcessProvider",
		AccessKeyID:     reply.AccessKeyID,
		SecretAccessKey: reply.SecretAccessKey,
		SessionToken:    reply.SessionToken,
		AccountID:       reply.AccountID,
	}
	if reply.Expiration != nil {
		creds.CanExpire = true
		creds.Expires = *reply.Expiration
	}
	return creds, nil
}

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/keyring"
)

// TestMaskedPromptAppearsBeforeTheChildExits runs an interactive child
// through --mask: its prompt, printed without a newline, must reach the user
// while the child waits for an answer, not when it exits. The prompt ends
// with the first bytes of a secret, which the masker holds back in case the
// rest follows; only its idle flush lets them through.
func TestMaskedPromptAppearsBeforeTheChildExits(t *testing.T) {
	const service, token = "secretrun-test-prompt", "ghp_Pr0mptT0k3nV4lu3"
	if err := probeKeyring(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the OS keyring is required under CI=true: %v", err)
		}
		t.Skipf("needs the OS keyring (scripts/test starts one): %v", err)
	}
	if err := (keyring.OS{}).Set(service, "TOKEN", providers.NewSecret(token)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = (keyring.OS{}).Delete(service, "TOKEN") })
	dir := t.TempDir()
	config := "version: 1\nproviders:\n  local: {type: keyring, service: " + service + "}\nenvironments:\n  dev:\n    - from: local\n      keys: [TOKEN]\n"
	if err := os.WriteFile(filepath.Join(dir, "secretrun.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("secretrun", "--mask", "--", "sh", "-c", `printf 'Password: ghp_'; read answer; echo "got $answer"`)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CI=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// Read until the prompt arrives; the child is blocked in read meanwhile.
	var seen bytes.Buffer
	deadline := time.AfterFunc(5*time.Second, func() { _ = cmd.Process.Kill() })
	buf := make([]byte, 64)
	for !strings.Contains(seen.String(), "Password: ghp_") {
		n, err := stdout.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("the prompt never arrived while the child waited; output so far %q: %v", seen.String(), err)
		}
	}
	deadline.Stop()

	if _, err := io.WriteString(stdin, "yes\n"); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("secretrun: %v", err)
	}
	if got := seen.String() + string(rest); got != "Password: ghp_got yes\n" {
		t.Errorf("output %q, want %q", got, "Password: ghp_got yes\n")
	}
}

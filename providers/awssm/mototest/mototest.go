// Package mototest runs moto, an AWS emulator, for tests of the AWS
// providers (Secrets Manager and SSM Parameter Store): one moto_server per
// test package, started on first use on a free loopback port and reset
// between tests, a recording HTTP transport to count and shape calls, and
// the checks the tests of both providers make on a provider instance.
package mototest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/providers/providertest"
)

// Region is the region tests use; moto keeps one store per region.
const Region = "eu-west-1"

// Credentials moto accepts, as it accepts any.
const (
	AccessKeyID     = "AKIAMOTOTEST0000"
	SecretAccessKey = "moto-test-secret-access-key"
)

// Server is a running moto_server.
type Server struct {
	// URL is the server's base URL, the endpoint to give the SDK.
	URL string

	cmd    *exec.Cmd
	output *lockedBuffer
	done   chan struct{}
}

// Shared starts one server for a whole test package when a test first asks
// for it. Declare one in the package and stop it in TestMain:
//
//	var moto mototest.Shared
//
//	func TestMain(m *testing.M) { code := m.Run(); moto.Stop(); os.Exit(code) }
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Get returns the package's server, reset to empty. It skips the test when
// moto_server cannot run, or fails it under CI=true.
func (s *Shared) Get(t testing.TB) *Server {
	t.Helper()
	s.once.Do(func() { s.srv, s.err = Start() })
	if s.err != nil {
		providertest.Need(t, "moto_server", s.err)
	}
	if err := s.srv.Reset(); err != nil {
		t.Fatal(err)
	}
	return s.srv
}

// Stop stops the server if one was started.
func (s *Shared) Stop() {
	if s.srv != nil {
		s.srv.Stop()
	}
}

// Start starts moto_server on a free loopback port and waits until it
// answers.
func Start() (*Server, error) {
	path, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, err
	}
	var lastErr error
	// A port found free can be taken before moto binds it; try another.
	for range 3 {
		srv, err := start(path)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(path string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	out := &lockedBuffer{}
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that Stop reaches the Python process
	// behind any wrapper script.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	srv := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd, output: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(srv.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		resp, err := http.Get(srv.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv, nil
			}
		}
		select {
		case <-srv.done:
			return nil, fmt.Errorf("moto_server exited: %s", out.String())
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			srv.Stop()
			return nil, fmt.Errorf("moto_server did not answer on %s within 30s: %s", srv.URL, out.String())
		}
	}
}

// Reset empties every store of the server.
func (s *Server) Reset() error {
	resp, err := http.Post(s.URL+"/moto-api/reset", "application/json", nil)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset moto: %s", resp.Status)
	}
	return nil
}

// Stop ends the server: SIGTERM to its process group, SIGKILL if it is
// still there after five seconds.
func (s *Server) Stop() {
	pgid := -s.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-s.done
	}
}

// Env returns what a provider's Env.Getenv should answer to use the server
// with static credentials in Region.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": SecretAccessKey,
		"AWS_REGION":            Region,
		"AWS_ENDPOINT_URL":      s.URL,
	}
}

// Client returns an SDK client for the server's Secrets Manager, for tests
// to arrange secrets with.
func (s *Server) Client() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	})
}

// CreateString creates a secret holding a string and returns its ARN.
func (s *Server) CreateString(t testing.TB, name, value string) string {
	t.Helper()
	out, err := s.Client().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(value),
	})
	if err != nil {
		t.Fatalf("create secret %s: %v", name, err)
	}
	return aws.ToString(out.ARN)
}

// PutString stores a new version of a secret, creating the secret if it
// does not exist yet, and returns the version id.
func (s *Server) PutString(t testing.TB, name, value string) string {
	t.Helper()
	out, err := s.Client().PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(name), SecretString: aws.String(value),
	})
	var notFound interface{ ErrorCode() string }
	if errors.As(err, &notFound) && notFound.ErrorCode() == "ResourceNotFoundException" {
		s.CreateString(t, name, value)
		return s.CurrentVersion(t, name)
	}
	if err != nil {
		t.Fatalf("put secret value %s: %v", name, err)
	}
	return aws.ToString(out.VersionId)
}

// CurrentVersion returns the id of the version staged AWSCURRENT.
func (s *Server) CurrentVersion(t testing.TB, name string) string {
	t.Helper()
	out, err := s.Client().DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatalf("describe secret %s: %v", name, err)
	}
	for id, stages := range out.VersionIdsToStages {
		for _, st := range stages {
			if st == "AWSCURRENT" {
				return id
			}
		}
	}
	t.Fatalf("secret %s has no AWSCURRENT version", name)
	return ""
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	const keep = 2000
	s := b.buf.String()
	if len(s) > keep {
		s = "..." + s[len(s)-keep:]
	}
	return s
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

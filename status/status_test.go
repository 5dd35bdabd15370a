package status

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
)

// The test binary asks a socket as another user when told to: it prints
// what it read, or the error.
func TestMain(m *testing.M) {
	if sock := os.Getenv("SECRETRUN_STATUS_ASK"); sock != "" {
		c, err := Ask(sock)
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			os.Exit(0)
		}
		os.Stdout.WriteString("answered: " + c.Command)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type ref string

func (r ref) String() string { return string(r) }

func secrets(version string) *inject.Secrets {
	src := &providers.Source{Provider: "vault", Ref: ref("secret/myapp")}
	return &inject.Secrets{Vars: []inject.Variable{
		{Name: "API_KEY", Value: providers.NewSecret("the-api-key-value"), Source: src, Version: version},
		{Name: "OTHER", Value: providers.NewSecret("the-other-value"), Source: src, Version: version},
	}}
}

func TestServerFollowsStartsAndRotations(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secretrun")
	s, err := Listen(dir, Child{PID: 4242, Command: "server", Environment: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v, %v; want mode 0700", fi, err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Observe(inject.Event{Kind: inject.EventStart, PID: 100, Secrets: secrets("3"), Time: t0})
	got, errs := List([]string{dir})
	if len(errs) != 0 || len(got) != 1 {
		t.Fatalf("List: %+v, %v", got, errs)
	}
	c := got[0]
	if c.PID != 4242 || c.ChildPID != 100 || c.Command != "server" || c.User != os.Getuid() || len(c.Sources) != 1 ||
		c.Sources[0].Version != "v3" || !c.Sources[0].Since.Equal(t0) {
		t.Fatalf("after the start: %+v", c)
	}

	// A rotation that restarts: the versions change with the new child.
	t1 := t0.Add(time.Hour)
	s.Observe(inject.Event{Kind: inject.EventRotate, Action: inject.ActionRestart, Secrets: secrets("4"), Time: t1})
	if c, _ := Ask(s.path); c.Sources[0].Version != "v3" {
		t.Errorf("before the restart, the child holds %s; want v3", c.Sources[0].Version)
	}
	s.Observe(inject.Event{Kind: inject.EventStart, PID: 101, Secrets: secrets("4"), Time: t1})
	if c, _ := Ask(s.path); c.ChildPID != 101 || c.Sources[0].Version != "v4" || !c.Sources[0].Since.Equal(t1) {
		t.Errorf("after the restart: %+v", c)
	}
	// A signal applies a rotation to the running child.
	t2 := t1.Add(time.Hour)
	s.Observe(inject.Event{Kind: inject.EventRotate, Action: inject.ActionSignal, Secrets: secrets("5"), Time: t2})
	if c, _ := Ask(s.path); c.ChildPID != 101 || c.Sources[0].Version != "v5" || !c.Sources[0].Since.Equal(t2) {
		t.Errorf("after a signalled rotation: %+v", c)
	}
	// A restart with the same versions keeps their since.
	s.Observe(inject.Event{Kind: inject.EventStart, PID: 102, Secrets: secrets("5"), Time: t2.Add(time.Minute)})
	if c, _ := Ask(s.path); !c.Sources[0].Since.Equal(t2) {
		t.Errorf("since moved on a restart with the same version: %+v", c)
	}

	raw, _ := Ask(s.path)
	if b, _ := jsonOf(raw); strings.Contains(b, "the-api-key-value") {
		t.Error("the status holds a value")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket outlives Close: %v", err)
	}
}

// TestAnotherUserIsRefused asks as uid 65534 through a socket that user may
// connect to: the peer check alone must keep the answer back.
func TestAnotherUserIsRefused(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test starts a process as another user, which needs root")
		}
		t.Skip("needs root to start a process as another user")
	}
	dir := filepath.Join(t.TempDir(), "secretrun")
	s, err := Listen(dir, Child{PID: 4343, Command: "server"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Observe(inject.Event{Kind: inject.EventStart, PID: 100, Secrets: secrets("3"), Time: time.Now()})
	// Open the way to the socket for everyone, as a careless directory
	// would.
	for p := s.path; p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o005|map[bool]os.FileMode{true: 0o002}[p == s.path]); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary sits where uid 65534 cannot reach it; a copy can.
	exe := filepath.Join(filepath.Dir(dir), "asker")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ask := func(uid uint32) string {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "SECRETRUN_STATUS_ASK="+s.path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("asking as uid %d: %v: %s", uid, err, out)
		}
		return string(out)
	}
	if got := ask(65534); got != "error: "+ErrRefused.Error() {
		t.Errorf("uid 65534 got %q; want it refused", got)
	}
	if got := ask(0); got != "answered: server" {
		t.Errorf("root got %q; want the answer", got)
	}
}

func jsonOf(c Child) (string, error) {
	b, err := json.Marshal(c)
	return string(b), err
}

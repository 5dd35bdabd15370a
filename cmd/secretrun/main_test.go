package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/keyring"
)

// scriptCommands are the programs scripts run, the test binary standing in
// for each; files for one system add theirs.
var scriptCommands = map[string]func(){
	"secretrun": func() { os.Exit(run(context.Background(), os.Args, systemDeps())) },
	"sigcount":  sigcount,
}

func TestMain(m *testing.M) {
	testscript.Main(m, scriptCommands)
}

// TestScripts runs the end-to-end scripts in testdata/script, each a user
// session against the real secretrun binary and, where a script says so, the
// real OS keyring.
func TestScripts(t *testing.T) {
	keyringErr := probeKeyring()
	if keyringErr != nil && os.Getenv("CI") == "true" {
		t.Fatalf("the OS keyring is required under CI=true: %v", keyringErr)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			env.Setenv("HOME", home)
			// The keyring daemon keeps its files under the HOME it was
			// started with; scripts search it for leaked values.
			env.Setenv("KEYRING_HOME", os.Getenv("HOME"))
			for _, v := range []string{"DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"} {
				env.Setenv(v, os.Getenv(v))
			}
			env.Setenv("KEYRING_BUS", os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
			// Masking defaults to on under CI; scripts turn it on themselves.
			env.Setenv("CI", "")
			env.Setenv("GITHUB_ACTIONS", "")
			return os.MkdirAll(home, 0o700)
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "keyring":
				return keyringErr == nil, nil
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":     cmdStatus,
			"waitfor":    cmdWaitFor,
			"nosecret":   cmdNoSecret,
			"sendsignal": cmdSendSignal,
		},
	})
}

func probeKeyring() error {
	service := "secretrun-probe"
	if err := (keyring.OS{}).Set(service, "probe", providers.NewSecret("probe")); err != nil {
		return err
	}
	return (keyring.OS{}).Delete(service, "probe")
}

// status N PROGRAM ARGS... runs a program and asserts its exit status, as a
// shell reports it: 128+N when signal N killed it.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		ws := exitErr.Sys().(syscall.WaitStatus)
		got = ws.ExitStatus()
		if ws.Signaled() {
			got = 128 + int(ws.Signal())
		}
	case err != nil:
		ts.Fatalf("status: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// waitfor FILE TEXT waits up to ten seconds for FILE to contain TEXT, so
// scripts synchronise with background processes instead of sleeping.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitfor FILE TEXT")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(ts.MkAbs(args[0])); err == nil && strings.Contains(string(b), args[1]) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(ts.MkAbs(args[0]))
	ts.Fatalf("%s does not contain %q after 10s; it holds %q", args[0], args[1], b)
}

// nosecret VALUE PATH... fails if any file under the paths, or the last
// command's stdout or stderr, contains VALUE.
func cmdNoSecret(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: nosecret VALUE [PATH...]")
	}
	value := []byte(args[0])
	for _, stream := range []string{"stdout", "stderr"} {
		if bytes.Contains([]byte(ts.ReadFile(stream)), value) {
			ts.Fatalf("the secret value appears in %s", stream)
		}
	}
	for _, root := range args[1:] {
		err := filepath.WalkDir(ts.MkAbs(root), func(path string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err == nil && bytes.Contains(b, value) {
				return fmt.Errorf("the secret value appears in %s", path)
			}
			return nil
		})
		if err != nil {
			ts.Fatalf("%v", err)
		}
	}
}

// sendsignal SIGNAL PIDFILE sends a signal (HUP, TERM, USR1, ...) to the
// process whose PID a script wrote to PIDFILE.
func cmdSendSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sendsignal SIGNAL PIDFILE")
	}
	sig := unix.SignalNum("SIG" + args[0])
	if sig == 0 {
		ts.Fatalf("unknown signal %s", args[0])
	}
	pid, err := strconv.Atoi(strings.TrimSpace(ts.ReadFile(args[1])))
	if err != nil {
		ts.Fatalf("sendsignal: %v", err)
	}
	ts.Check(syscall.Kill(pid, sig))
}

// sigcount FILE READY is a child that appends a line to FILE for every
// SIGINT it receives, one by one (a shell's trap would merge two that arrive
// together), writes READY once listening, and exits 0 on SIGTERM.
func sigcount() {
	ints := make(chan os.Signal, 16)
	signal.Notify(ints, os.Interrupt, syscall.SIGTERM)
	if err := os.WriteFile(os.Args[2], []byte("ready\n"), 0o644); err != nil {
		os.Exit(2)
	}
	for sig := range ints {
		if sig == syscall.SIGTERM {
			return
		}
		f, err := os.OpenFile(os.Args[1], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			os.Exit(2)
		}
		fmt.Fprintln(f, "INT")
		f.Close()
	}
}

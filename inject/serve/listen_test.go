//go:build unix

package serve

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers/providertest"
)

func listenT(t *testing.T, specs ...ListenSpec) []Listener {
	t.Helper()
	ls, err := Listen(specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CloseListeners(ls) })
	return ls
}

// startShimmed starts args through the shim with the listeners, as the
// supervisor does, and returns the child's stdout.
func startShimmed(t *testing.T, ls []Listener, extraEnv []string, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	path, argv, err := ShimArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: path, Args: argv, ExtraFiles: Files(ls), Stderr: os.Stderr}
	cmd.Env = append(append(os.Environ(), Env(ls)...), extraEnv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(stdout)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("child's output: %q, %v", s, err)
	}
	return strings.TrimSuffix(s, "\n")
}

// ask connects to addr and reads the one line a child answers with.
func ask(t *testing.T, addr net.Addr) string {
	t.Helper()
	c, err := net.DialTimeout(addr.Network(), addr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("answer: %q, %v", got, err)
	}
	return strings.TrimSuffix(string(got), "\n")
}

// pythonChild accepts one connection on fd 3 as a Python server given the
// socket by systemd would, and answers with its name.
const pythonChild = `
import os, socket, sys
s = socket.socket(fileno=3)
c, _ = s.accept()
c.sendall(sys.argv[1].encode() + b"\n")
c.close()
`

func TestHandoffGivesEachChildTheSocketWithItsOwnPID(t *testing.T) {
	python := needCommand(t, "python3")
	ls := listenT(t, ListenSpec{Network: "tcp", Address: "127.0.0.1:0"})
	addr := ls[0].Addr
	wantName := strings.ReplaceAll(addr.String(), ":", "-")
	if ls[0].Name != wantName {
		t.Fatalf("default name %q, want %q", ls[0].Name, wantName)
	}

	// A shell child reports its own $$ and what it was given, then becomes
	// a Python server (exec keeps the PID); its grandchild, a process of
	// its own, sees a LISTEN_PID that is not its PID.
	first, out := startShimmed(t, ls, nil, "sh", "-c",
		`echo "$$ $LISTEN_PID $LISTEN_FDS $LISTEN_FDNAMES"; sh -c 'echo "$$ $LISTEN_PID"; true'; exec "$0" -c "$1" first`,
		python, pythonChild)
	fields := strings.Fields(readLine(t, out))
	pid := strconv.Itoa(first.Process.Pid)
	if want := []string{pid, pid, "1", wantName}; strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Fatalf("child saw $$ LISTEN_PID LISTEN_FDS LISTEN_FDNAMES = %q, want %q", fields, want)
	}
	grand := strings.Fields(readLine(t, out))
	if len(grand) != 2 || grand[0] == grand[1] || grand[1] != pid {
		t.Fatalf("grandchild saw $$ LISTEN_PID = %q: LISTEN_PID must stay the child's", grand)
	}
	if got := ask(t, addr); got != "first" {
		t.Fatalf("first child answered %q", got)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first child: %v", err)
	}

	// Between children the socket stays open: a client that connects now
	// waits in the queue for the next child instead of being refused.
	waiting := make(chan string, 1)
	go func() { waiting <- ask(t, addr) }()
	time.Sleep(100 * time.Millisecond)

	second, out := startShimmed(t, ls, []string{childEnv + "=listen-fds", "SERVE_TEST_NAME=second"}, os.Args[0])
	want := fmt.Sprintf("pid=%d LISTEN_PID=%d LISTEN_FDS=1 LISTEN_FDNAMES=%s", second.Process.Pid, second.Process.Pid, wantName)
	if got := readLine(t, out); got != want {
		t.Fatalf("second child: %q, want %q", got, want)
	}
	if got := <-waiting; got != "second" {
		t.Fatalf("the client that connected between children got %q", got)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second child: %v", err)
	}
}

func TestHandoffSeveralSocketsInOrderWithNames(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	ls := listenT(t,
		ListenSpec{Network: "tcp", Address: "127.0.0.1:0", Name: "http"},
		ListenSpec{Network: "unix", Address: sock},
		ListenSpec{Network: "tcp4", Address: "127.0.0.1:0", Name: "metrics"},
	)
	_, out := startShimmed(t, ls, nil, "sh", "-c", `echo "$LISTEN_FDS $LISTEN_FDNAMES"`)
	if got, want := readLine(t, out), "3 http:"+sock+":metrics"; got != want {
		t.Fatalf("LISTEN_FDS LISTEN_FDNAMES = %q, want %q", got, want)
	}
	// Each socket is at its place: fd 4 is the unix socket, and a Python
	// child accepts on it.
	python := needCommand(t, "python3")
	_, out = startShimmed(t, ls, nil, python, "-c", `
import socket
s = socket.socket(fileno=4)
print(s.family == socket.AF_UNIX, s.getsockname(), flush=True)
c, _ = s.accept()
c.sendall(b"unix\n")
`)
	if got, want := readLine(t, out), "True "+sock; got != want {
		t.Fatalf("fd 4 is %q, want the unix socket %q", got, want)
	}
	if got := ask(t, ls[1].Addr); got != "unix" {
		t.Fatalf("over the unix socket: %q", got)
	}
	CloseListeners(ls)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the unix socket's path after CloseListeners: %v", err)
	}
}

func TestListenErrorsNameTheAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := ListenSpec{Network: "tcp", Address: "127.0.0.1:0"}
	for _, tc := range []struct {
		spec ListenSpec
		want string
	}{
		{ListenSpec{Network: "tcp", Address: taken.Addr().String()}, "listen tcp " + taken.Addr().String() + ": the address is already in use"},
		{ListenSpec{Network: "tcp", Address: "8080"}, "want host:port"},
		{ListenSpec{Network: "tcp", Address: "127.0.0.1:http"}, "not a number"},
		{ListenSpec{Network: "udp", Address: "127.0.0.1:53"}, "tcp, tcp4, tcp6 or unix"},
		{ListenSpec{Network: "tcp", Address: "127.0.0.1:0", Name: "a:b"}, "no ':'"},
		{ListenSpec{Network: "tcp", Address: "192.0.2.1:8080"}, "no interface of this machine"},
		{ListenSpec{Network: "unix", Address: filepath.Join(t.TempDir(), "missing", "s.sock")}, "no such file"},
	} {
		// All or nothing: the good socket before the bad one is closed
		// again.
		ls, err := Listen([]ListenSpec{free, tc.spec})
		if ls != nil {
			t.Errorf("%+v: listeners returned with an error", tc.spec)
		}
		errorContains(t, err, tc.want)
	}
	if os.Geteuid() != 0 {
		_, err := Listen([]ListenSpec{{Network: "tcp", Address: "127.0.0.1:80"}})
		errorContains(t, err, "CAP_NET_BIND_SERVICE")
	}
}

func TestShimExitStatuses(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "server")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"no-such-command-anywhere"}, 127, "secretrun: no-such-command-anywhere: command not found\n"},
		{[]string{notExec}, 126, "secretrun: " + notExec + ": cannot execute: permission denied\n"},
		{[]string{dir}, 126, "secretrun: " + dir + ": cannot execute: is a directory\n"},
	} {
		path, argv, err := ShimArgs(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := &exec.Cmd{Path: path, Args: argv, Stderr: &stderr}
		err = cmd.Run()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != tc.status || stderr.String() != tc.stderr {
			t.Errorf("%q: %v, stderr %q; want status %d and %q", tc.args, err, stderr.String(), tc.status, tc.stderr)
		}
	}
	// The command is looked up in the PATH the child is given, not in
	// secretrun's own.
	if err := os.WriteFile(filepath.Join(dir, "only-here"), []byte("#!/bin/sh\necho found in the PATH given\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path, argv, _ := ShimArgs([]string{"only-here"})
	cmd := &exec.Cmd{Path: path, Args: argv, Env: append(os.Environ(), "PATH="+dir+":/usr/bin:/bin")}
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "found in the PATH given\n" {
		t.Fatalf("%q, %v", out, err)
	}
	var stderr bytes.Buffer
	if status := RunShim([]string{"sh"}, &stderr); status != 126 || !strings.Contains(stderr.String(), ShimArg+" -- COMMAND") {
		t.Fatalf("without --: status %d, %q", status, stderr.String())
	}
}

// needCommand returns the path of a program the test needs: a skip on a
// developer's machine without it, a failure under CI.
func needCommand(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		providertest.Need(t, name, err)
	}
	return path
}

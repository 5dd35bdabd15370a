//go:build unix

package serve

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// notifySender is a child that speaks sd_notify as a Python server would:
// a STATUS= first, then, once told on stdin, READY=1 among other
// assignments.
const notifySender = `
import os, socket, sys
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"STATUS=starting", addr)
s.sendto(b"READY=0\nX_READY=1\nREADY=11", addr)
print("status sent", flush=True)
sys.stdin.readline()
s.sendto(b"STATUS=up\nREADY=1\nMAINPID=1\n", addr)
`

func newNotify(t *testing.T) *Notify {
	t.Helper()
	n, err := NewNotify()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func TestNotifyWaitsForReadyFromTheChild(t *testing.T) {
	python := needCommand(t, "python3")
	n := newNotify(t)
	if runtime.GOOS == "linux" && !strings.HasPrefix(n.Env(), "NOTIFY_SOCKET=@secretrun-notify-") {
		t.Fatalf("Env() = %q, want an abstract socket", n.Env())
	}
	cmd := exec.Command(python, "-c", notifySender)
	cmd.Env = append(os.Environ(), n.Env())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if got, _ := bufio.NewReader(stdout).ReadString('\n'); got != "status sent\n" {
		t.Fatalf("child said %q", got)
	}

	// STATUS= and assignments that only look like READY=1 do not count.
	err := waitFor(Check{Notify: true}, 300*time.Millisecond, 0, n)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before READY=1: %v", err)
	}
	errorContains(t, err, "no READY=1")

	stdin.Write([]byte("go\n"))
	if err := waitFor(Check{Notify: true}, 10*time.Second, 0, n); err != nil {
		t.Fatalf("after READY=1: %v", err)
	}
	select {
	case <-n.Ready():
	default:
		t.Fatal("Ready() not closed after READY=1")
	}
	// It stays ready: a second wait returns at once.
	if err := waitFor(Check{Notify: true}, time.Second, 0, n); err != nil {
		t.Fatal(err)
	}
}

func TestNotifyFromSystemdNotifyInAGrandchild(t *testing.T) {
	needCommand(t, "systemd-notify")
	n := newNotify(t)
	// sh forks systemd-notify, which sends with its own PID, not the
	// child's; by default it also waits for a BARRIER=1 answer, which
	// comes when its descriptor is dropped.
	cmd := exec.Command("sh", "-c", "systemd-notify --ready --status=serving; echo notified $?")
	cmd.Env = append(os.Environ(), n.Env())
	cmd.Stderr = os.Stderr
	out := make(chan string, 1)
	go func() {
		b, _ := cmd.Output()
		out <- string(b)
	}()
	if err := waitFor(Check{Notify: true}, 10*time.Second, 0, n); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		if got != "notified 0\n" {
			t.Fatalf("systemd-notify: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("systemd-notify still waits for its barrier")
	}
}

func TestNotifyDropsDescriptorsSentAlong(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
	python := needCommand(t, "python3")
	n := newNotify(t)
	before := openFDs(t)
	cmd := exec.Command(python, "-c", `
import os, socket
addr = "\0" + os.environ["NOTIFY_SOCKET"][1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(8)]
s.connect(addr)
socket.send_fds(s, [b"FDSTORE=1\nFDNAME=cache"], fds)
s.send(b"READY=1")
`)
	cmd.Env = append(os.Environ(), n.Env())
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(Check{Notify: true}, 10*time.Second, 0, n); err != nil {
		t.Fatal(err)
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d descriptors of /dev/null open after FDSTORE=1 sent 8, %d before", after, before)
	}
}

// openFDs counts secretrun's descriptors of /dev/null, which is what the
// child sends: other tests' sockets may close meanwhile.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target == "/dev/null" {
			n++
		}
	}
	return n
}

func TestNotifyClosedBeforeReady(t *testing.T) {
	n, err := NewNotify()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waitFor(Check{Notify: true}, 10*time.Second, 0, n) }()
	time.Sleep(50 * time.Millisecond)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		errorContains(t, err, "notify socket was closed")
	case <-time.After(5 * time.Second):
		t.Fatal("Wait goes on after Close")
	}
}

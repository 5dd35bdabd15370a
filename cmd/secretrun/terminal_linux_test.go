package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCtrlCOnATerminalReachesTheChildOnce runs secretrun, supervising, as
// the foreground of a real pseudo-terminal and types Ctrl-C. The terminal
// signals the whole foreground process group, the child included, so
// secretrun must not forward a second SIGINT.
func TestCtrlCOnATerminalReachesTheChildOnce(t *testing.T) {
	ptmx, pts := openPTY(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secretrun.yaml"), []byte("version: 1\nenvironments:\n  dev: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	count, ready := filepath.Join(dir, "ints"), filepath.Join(dir, "ready")
	cmd := exec.Command("secretrun", "--mask", "--", "sigcount", count, ready)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CI=")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	// A session of its own with the terminal as its controlling terminal:
	// secretrun's process group is the terminal's foreground group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	go func() { _, _ = io.Copy(io.Discard, ptmx) }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	waitForFile(t, ready, "ready")
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	waitForFile(t, count, "INT")
	// A forwarded duplicate would follow within microseconds of the first.
	time.Sleep(300 * time.Millisecond)
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "INT"); n != 1 {
		t.Errorf("the child received SIGINT %d times for one Ctrl-C", n)
	}

	// A signal from elsewhere is still forwarded.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("secretrun after SIGTERM: %v (want the child's status 0)", err)
	}
}

func openPTY(t *testing.T) (ptmx, pts *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptmx, pts
}

func waitForFile(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), text) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s does not contain %q after 10s", filepath.Base(path), text)
}

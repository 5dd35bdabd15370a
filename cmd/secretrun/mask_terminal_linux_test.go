package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/keyring"
)

// The secrets of the masked-terminal tests: a token, and a multi-line key
// that the child's terminal writes with CR LF line ends.
const (
	terminalService = "secretrun-test-terminal"
	terminalToken   = "ghp_T3rm1nalT0k3nV4lu3"
	terminalKeyLine = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
	terminalKey     = "-----BEGIN TEST KEY-----\n" + terminalKeyLine + "\n-----END TEST KEY-----"
)

// maskedTerminalDir stores the secrets in the real OS keyring and returns
// a directory whose secretrun.yaml reads them, with any config lines added.
func maskedTerminalDir(t testing.TB, extra string) string {
	t.Helper()
	if err := probeKeyring(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the OS keyring is required under CI=true: %v", err)
		}
		t.Skipf("needs the OS keyring (scripts/test starts one): %v", err)
	}
	setTerminalSecret(t, "TOKEN", terminalToken)
	setTerminalSecret(t, "KEY", terminalKey)
	dir := t.TempDir()
	config := "version: 1\nproviders:\n  local: {type: keyring, service: " + terminalService + "}\nenvironments:\n  dev:\n    - from: local\n      keys: [TOKEN, KEY]\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "secretrun.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func setTerminalSecret(t testing.TB, key, value string) {
	t.Helper()
	if err := (keyring.OS{}).Set(terminalService, key, providers.NewSecret(value)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = (keyring.OS{}).Delete(terminalService, key) })
}

// userTerminal is secretrun running on a pseudo-terminal as a user's shell
// would start it: the foreground of a terminal that is its controlling
// terminal. The test holds the user's side.
type userTerminal struct {
	t    *testing.T
	ptmx *os.File // the user's side: what is typed, what is shown
	pts  *os.File // secretrun's terminal, kept open to read its settings
	cmd  *exec.Cmd
	// before and after are the terminal's settings before secretrun
	// started and once it has exited.
	before, after *unix.Termios

	mu     sync.Mutex
	shown  bytes.Buffer
	copied chan struct{}
}

// startOnTerminal starts secretrun with args on a new terminal of the
// given size; its stderr is the terminal too unless stderr is given.
func startOnTerminal(t *testing.T, dir string, size pty.Winsize, stderr *os.File, args ...string) *userTerminal {
	t.Helper()
	ptmx, pts, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close(); pts.Close() })
	if err := pty.Setsize(ptmx, &size); err != nil {
		t.Fatal(err)
	}
	u := &userTerminal{t: t, ptmx: ptmx, pts: pts, copied: make(chan struct{})}
	u.before = u.settings()
	u.cmd = exec.Command("secretrun", args...)
	u.cmd.Dir = dir
	u.cmd.Env = append(os.Environ(), "CI=", "GITHUB_ACTIONS=", "TERM=xterm")
	u.cmd.Stdin, u.cmd.Stdout, u.cmd.Stderr = pts, pts, pts
	if stderr != nil {
		u.cmd.Stderr = stderr
	}
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.cmd.Process.Kill() })
	go func() {
		defer close(u.copied)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			u.mu.Lock()
			u.shown.Write(buf[:n])
			u.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return u
}

func (u *userTerminal) settings() *unix.Termios {
	u.t.Helper()
	tio, err := unix.IoctlGetTermios(int(u.pts.Fd()), unix.TCGETS)
	if err != nil {
		u.t.Fatal(err)
	}
	return tio
}

func (u *userTerminal) output() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.shown.String()
}

// waitFor waits up to ten seconds for the terminal to show text.
func (u *userTerminal) waitFor(text string) {
	u.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(u.output(), text) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	u.t.Fatalf("the terminal does not show %q after 10s; it shows %q", text, u.output())
}

func (u *userTerminal) typeKeys(keys string) {
	u.t.Helper()
	if _, err := u.ptmx.WriteString(keys); err != nil {
		u.t.Fatal(err)
	}
}

// wait waits for secretrun to exit and for everything it wrote to the
// terminal, and returns its status as a shell reports it.
func (u *userTerminal) wait() int {
	u.t.Helper()
	timer := time.AfterFunc(20*time.Second, func() { _ = u.cmd.Process.Kill() })
	defer timer.Stop()
	err := u.cmd.Wait()
	u.after = u.settings()
	// The user's side reads to the end once nobody holds the terminal.
	u.pts.Close()
	select {
	case <-u.copied:
	case <-time.After(10 * time.Second):
		u.t.Errorf("the terminal is still held open after secretrun exited")
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		ws := exitErr.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	u.t.Fatal(err)
	return 0
}

// restored checks that the terminal has exactly the settings it had before
// secretrun started, as `stty -g` would show them.
func (u *userTerminal) restored() {
	u.t.Helper()
	if *u.after != *u.before {
		u.t.Errorf("the terminal's settings changed:\nbefore %+v\nafter  %+v", *u.before, *u.after)
	}
}

// isRaw reports whether secretrun put its terminal in raw mode: no echo,
// no line editing, no signals from keys.
func (u *userTerminal) isRaw() bool {
	tio := u.settings()
	return tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) == 0
}

func (u *userTerminal) noSecrets() {
	u.t.Helper()
	out := u.output()
	for _, v := range []string{terminalToken, terminalKeyLine} {
		if strings.Contains(out, v) {
			u.t.Errorf("a secret value reached the terminal: %q", out)
		}
	}
}

func TestMaskedChildKeepsTheTerminal(t *testing.T) {
	dir := maskedTerminalDir(t, "")
	script := `for fd in 0 1 2; do [ -t $fd ] && echo "fd $fd is a terminal"; done
printf '\033[1;31mred\033[0m\n'
echo "token $TOKEN"
printf '%s\n' "$KEY"
echo "size $(stty size) cols $(tput cols)"
exit 3`
	u := startOnTerminal(t, dir, pty.Winsize{Rows: 33, Cols: 101}, nil, "--mask", "--", "sh", "-c", script)
	if st := u.wait(); st != 3 {
		t.Errorf("secretrun exited %d, want the child's 3; terminal: %q", st, u.output())
	}
	out := u.output()
	for _, want := range []string{
		"fd 0 is a terminal", "fd 1 is a terminal", "fd 2 is a terminal",
		"\x1b[1;31mred\x1b[0m\r\n",
		"token *****\r\n",
		"size 33 101 cols 101\r\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal does not show %q; it shows %q", want, out)
		}
	}
	if strings.Contains(out, "BEGIN TEST KEY") {
		t.Errorf("the multi-line key was not masked: %q", out)
	}
	u.noSecrets()
	u.restored()
}

func TestMaskedChildFollowsTheWindowSize(t *testing.T) {
	dir := maskedTerminalDir(t, "")
	script := `trap 'echo "now $(stty size)"; exit 0' WINCH
echo "start $(stty size)"
while :; do sleep 0.05; done`
	u := startOnTerminal(t, dir, pty.Winsize{Rows: 24, Cols: 80}, nil, "--mask", "--", "sh", "-c", script)
	u.waitFor("start 24 80")
	if err := pty.Setsize(u.ptmx, &pty.Winsize{Rows: 50, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	u.waitFor("now 50 132")
	if st := u.wait(); st != 0 {
		t.Errorf("secretrun exited %d, want 0", st)
	}
	u.restored()
}

// What is typed reaches the child through its own terminal, which edits
// the line as the user's terminal would, and echoes it masked.
func TestMaskedChildReadsWhatIsTyped(t *testing.T) {
	dir := maskedTerminalDir(t, "")
	u := startOnTerminal(t, dir, pty.Winsize{Rows: 24, Cols: 80}, nil, "--mask", "--", "sh", "-c", `printf 'name? '; read line; echo "hello [$line]"`)
	u.waitFor("name? ")
	if !u.isRaw() {
		t.Errorf("secretrun's terminal is not in raw mode while the child runs")
	}
	u.typeKeys("wrx\x7fld " + terminalToken + "\r")
	u.waitFor("hello [wrld *****]")
	if st := u.wait(); st != 0 {
		t.Errorf("secretrun exited %d, want 0", st)
	}
	u.noSecrets()
	u.restored()
}

// Ctrl-C, Ctrl-\ and a signal from elsewhere end the child with their
// status, and every way leaves the terminal as it was.
func TestMaskedChildEndsBySignal(t *testing.T) {
	tests := []struct {
		name string
		// end ends the child once it runs.
		end  func(u *userTerminal)
		want int
	}{
		{"ctrl-c", func(u *userTerminal) { u.typeKeys("\x03") }, 130},
		{"ctrl-backslash", func(u *userTerminal) { u.typeKeys("\x1c") }, 131},
		{"SIGTERM to secretrun", func(u *userTerminal) { _ = u.cmd.Process.Signal(syscall.SIGTERM) }, 143},
		{"SIGKILL to the child", func(u *userTerminal) { _ = syscall.Kill(childPID(u.t, u.output()), syscall.SIGKILL) }, 137},
	}
	dir := maskedTerminalDir(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := startOnTerminal(t, dir, pty.Winsize{Rows: 24, Cols: 80}, nil, "--mask", "--", "sh", "-c", `echo "pid $$ ready"; exec sleep 60`)
			u.waitFor("ready")
			// exec has replaced the shell with sleep once it is gone from ps.
			waitExeced(t, u)
			tt.end(u)
			if st := u.wait(); st != tt.want {
				t.Errorf("secretrun exited %d, want %d", st, tt.want)
			}
			u.restored()
		})
	}
}

// waitExeced waits until the child shell has become sleep, so that a
// signal meets sleep's default action rather than the shell's.
func waitExeced(t *testing.T, u *userTerminal) {
	t.Helper()
	pid := childPID(t, u.output())
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "sleep" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the child never became sleep")
}

func TestMaskedChildExitStatus(t *testing.T) {
	dir := maskedTerminalDir(t, "")
	for _, tt := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -INT $$", 130},
	} {
		t.Run(tt.script, func(t *testing.T) {
			u := startOnTerminal(t, dir, pty.Winsize{Rows: 24, Cols: 80}, nil, "--mask", "--", "sh", "-c", tt.script)
			if st := u.wait(); st != tt.want {
				t.Errorf("secretrun exited %d, want %d", st, tt.want)
			}
			u.restored()
		})
	}
}

// With stderr redirected, the child's stderr stays a stream of its own,
// masked, and goes where secretrun's goes.
func TestMaskedChildStderrRedirected(t *testing.T) {
	dir := maskedTerminalDir(t, "")
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	u := startOnTerminal(t, dir, pty.Winsize{Rows: 24, Cols: 80}, errFile, "--mask", "--", "sh", "-c",
		`echo "out $TOKEN"; echo "err $TOKEN" >&2; [ -t 1 ] && echo "stdout is a terminal"; [ -t 2 ] || echo "stderr is not"`)
	if st := u.wait(); st != 0 {
		t.Errorf("secretrun exited %d, want 0", st)
	}
	out := u.output()
	for _, want := range []string{"out *****", "stdout is a terminal", "stderr is not"} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal does not show %q; it shows %q", want, out)
		}
	}
	if strings.Contains(out, "err *****") {
		t.Errorf("stderr reached the terminal: %q", out)
	}
	b, err := os.ReadFile(errFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "err *****\n" {
		t.Errorf("stderr holds %q, want %q", b, "err *****\n")
	}
	u.noSecrets()
	u.restored()
}

// A rotation restarts the child on a new pseudo-terminal; the terminal
// stays raw across the restart, what is typed reaches the new child, and
// secretrun's own messages still start at the left margin.
func TestMaskedChildRestartsOnTheTerminal(t *testing.T) {
	dir := maskedTerminalDir(t, "watch:\n  interval: 200ms\n")
	const rotated = "ghp_R0t4t3dT0k3nV4lu3"
	t.Cleanup(func() { _ = (keyring.OS{}).Delete(terminalService, "TOKEN") })
	u := startOnTerminal(t, dir, pty.Winsize{Rows: 24, Cols: 80}, nil, "--watch", "--mask", "--", "sh", "-c",
		`[ -t 0 ] && [ -t 1 ] && tty=tty; echo "pid $$ $tty token $TOKEN"; read line; echo "line [$line]"`)
	u.waitFor("tty token *****")
	first := childPID(t, u.output())
	setTerminalSecret(t, "TOKEN", rotated)
	u.waitFor(fmt.Sprintf("restarting pid %d\r\n", first))
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(u.output(), "tty token *****") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !u.isRaw() {
		t.Errorf("secretrun's terminal is not in raw mode after the restart")
	}
	u.typeKeys("again\r")
	u.waitFor("line [again]")
	if st := u.wait(); st != 0 {
		t.Errorf("secretrun exited %d, want 0", st)
	}
	if n := strings.Count(u.output(), "tty token *****"); n != 2 {
		t.Errorf("%d children saw a terminal, want 2: %q", n, u.output())
	}
	if strings.Contains(u.output(), rotated) {
		t.Errorf("the rotated value reached the terminal: %q", u.output())
	}
	u.noSecrets()
	u.restored()
}

// childPID is the PID a child printed as "pid N".
func childPID(t *testing.T, out string) int {
	t.Helper()
	var pid int
	i := strings.Index(out, "pid ")
	if i < 0 {
		t.Fatalf("no pid in %q", out)
	}
	if _, err := fmt.Sscanf(out[i:], "pid %d", &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// BenchmarkMaskedOutput compares `secretrun --mask -- cat FILE` on a
// terminal, where the output crosses a pseudo-terminal, with the same into a
// pipe, and both with cat alone: MB/s of a log that holds the token once
// every 64 KiB.
func BenchmarkMaskedOutput(b *testing.B) {
	dir := maskedTerminalDir(b, "")
	const size = 64 << 20
	file := filepath.Join(b.TempDir(), "app.log")
	line := []byte("2025-01-01T00:00:00Z INFO request served in 12ms status=200 path=/api/v1/items\n")
	var log bytes.Buffer
	for log.Len() < size {
		if log.Len()%(64<<10) < len(line) {
			log.WriteString("token=" + terminalToken + "\n")
		}
		log.Write(line)
	}
	if err := os.WriteFile(file, log.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name     string
		terminal bool
		args     []string
	}{
		{"cat/pipe", false, []string{"cat", file}},
		{"cat/terminal", true, []string{"cat", file}},
		{"secretrun/pipe", false, []string{"secretrun", "--mask", "--", "cat", file}},
		{"secretrun/terminal", true, []string{"secretrun", "--mask", "--", "cat", file}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(log.Len()))
			for b.Loop() {
				runDrained(b, dir, bb.terminal, bb.args)
			}
		})
	}
}

// runDrained runs a command with its output on a new terminal or a pipe,
// read as fast as it comes.
func runDrained(b *testing.B, dir string, terminal bool, args []string) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CI=", "GITHUB_ACTIONS=")
	var out *os.File
	if terminal {
		ptmx, pts, err := pty.Open()
		if err != nil {
			b.Skipf("no pseudo-terminals here: %v", err)
		}
		defer ptmx.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pts.Close()
		out = ptmx
	} else {
		r, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		out = r.(*os.File)
	}
	n, _ := io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s: %v", args[0], err)
	}
	if n < 1<<20 {
		b.Fatalf("%s wrote only %d bytes", args[0], n)
	}
}

// BenchmarkKeystrokeEcho measures the time from a key typed on a terminal
// to its echo by a program that reads its terminal in raw mode, as an
// editor or a REPL does: alone, and under secretrun --mask, where the key
// crosses the relay and the echo the masker. A key that could begin a
// secret value waits for the masker's idle flush.
func BenchmarkKeystrokeEcho(b *testing.B) {
	const rawEcho = "stty raw -echo; exec cat"
	dir := maskedTerminalDir(b, "")
	for _, bb := range []struct {
		name string
		key  byte
		args []string
	}{
		{"alone", 'x', []string{"sh", "-c", rawEcho}},
		{"secretrun", 'x', []string{"secretrun", "--mask", "--", "sh", "-c", rawEcho}},
		{"secretrun/secret-prefix", terminalToken[0], []string{"secretrun", "--mask", "--", "sh", "-c", rawEcho}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			ptmx, pts, err := pty.Open()
			if err != nil {
				b.Skipf("no pseudo-terminals here: %v", err)
			}
			defer ptmx.Close()
			cmd := exec.Command(bb.args[0], bb.args[1:]...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CI=", "GITHUB_ACTIONS=")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			pts.Close()
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			echo := func(key byte) {
				if _, err := ptmx.Write([]byte{key}); err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 64)
				for {
					n, err := ptmx.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					if bytes.IndexByte(buf[:n], key) >= 0 {
						return
					}
				}
			}
			// Once the program reads, the first key comes back.
			echo('x')
			for b.Loop() {
				if bb.key != 'x' {
					// Another key first, so that this one is not let
					// through by the next but waits on its own.
					b.StopTimer()
					echo('x')
					b.StartTimer()
				}
				echo(bb.key)
			}
		})
	}
}

package exec

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// openPTY opens a pseudo-terminal: the program gets its pts as the
// terminal, the test types on its master.
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

// An interactive program prompts on the terminal and reads the answer
// there; what it prints on stdout is still the secret.
func TestInteractiveGetsTheTerminal(t *testing.T) {
	ptmx, pts := openPTY(t)
	opts, err := config.OptionsFromYAML(fmt.Sprintf("command: [%s]\ninteractive: true\ntimeout: 20s\n", tool(t, "ask")))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProvider("tools", opts, testEnv(), func() (*terminal, error) {
		f, err := os.OpenFile(pts.Name(), os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			return nil, err
		}
		return &terminal{in: f, out: f}, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	typed := make(chan error, 1)
	go func() {
		var seen bytes.Buffer
		buf := make([]byte, 256)
		for !strings.Contains(seen.String(), "passphrase: ") {
			n, err := ptmx.Read(buf)
			if err != nil {
				typed <- err
				return
			}
			seen.Write(buf[:n])
		}
		_, err := ptmx.Write([]byte("typed-answer\n"))
		typed <- err
	}()
	r := fetchAll(t, p, src(t, p, "as: ANSWER"))[0]
	select {
	case err := <-typed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the prompt never reached the terminal")
	}
	if got := values(t, r)[providers.Plain]; got != "typed-answer" {
		t.Errorf("got %q, want the answer typed on the terminal", got)
	}
}

// Without a terminal an interactive provider runs as any other: stdin is
// empty, and the program's stderr is quoted.
func TestInteractiveWithoutATerminal(t *testing.T) {
	opts, err := config.OptionsFromYAML(fmt.Sprintf("command: [%s]\ninteractive: true\n", tool(t, "ask")))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProvider("tools", opts, testEnv(), func() (*terminal, error) { return nil, os.ErrNotExist })
	if err != nil {
		t.Fatal(err)
	}
	err = fetchAll(t, p, src(t, p, "as: ANSWER"))[0].Err
	if err == nil || !strings.Contains(err.Error(), `exit status 3; stderr: "stdin is not a terminal"`) {
		t.Errorf("error %v", err)
	}
}

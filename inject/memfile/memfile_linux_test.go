package memfile_test

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretrun/secretrun/inject/memfile"
)

func newFile(t *testing.T, name string) *memfile.File {
	t.Helper()
	f, err := memfile.New(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFileIsAMemfdOpenedByPath(t *testing.T) {
	f := newFile(t, "TLS_KEY_FILE")
	if err := f.Write([]byte("-----BEGIN KEY-----\nabc\n")); err != nil {
		t.Fatal(err)
	}
	fd := f.Inherit().Fd()
	if fd < memfile.FirstFD {
		t.Errorf("descriptor %d, want at least %d", fd, memfile.FirstFD)
	}
	if want := "/dev/fd/" + strconv.Itoa(int(fd)); f.Path() != want {
		t.Errorf("path %q, want %q", f.Path(), want)
	}
	got, err := os.ReadFile(f.Path())
	if err != nil || string(got) != "-----BEGIN KEY-----\nabc\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
	if err != nil || !strings.HasPrefix(link, "/memfd:TLS_KEY_FILE") {
		t.Errorf("the descriptor links to %q (%v), want a memfd", link, err)
	}
	fi, err := os.Stat(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	// ssh and libpq refuse key files that are not regular or that others
	// may read.
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o400 {
		t.Errorf("mode %v, want a regular file with 0400", fi.Mode())
	}
	if fi.Size() != int64(len("-----BEGIN KEY-----\nabc\n")) {
		t.Errorf("size %d", fi.Size())
	}
}

func TestChildDescriptorCannotWriteOrSeal(t *testing.T) {
	f := newFile(t, "secret")
	if err := f.Write([]byte("original")); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Inherit().Fd())
	if _, err := unix.Write(fd, []byte("changed")); err == nil {
		t.Error("the child's descriptor writes")
	}
	// A seal that froze the file would stop every later rotation.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); err == nil {
		t.Error("the child's descriptor adds a write seal")
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seals&unix.F_SEAL_SEAL == 0 {
		t.Errorf("seals %#x: not sealed against further seals", seals)
	}
	if err := unix.Access(f.Path(), unix.X_OK); err == nil && os.Geteuid() != 0 {
		t.Error("the file is executable")
	}
	got, _ := os.ReadFile(f.Path())
	if string(got) != "original" {
		t.Errorf("contents %q after the attempts", got)
	}
}

func TestWriteReplacesContentsInPlace(t *testing.T) {
	f := newFile(t, "rotating")
	path := f.Path()
	// A reader that opened the file before the rewrite, as a child that
	// keeps it open does, reads the new contents too.
	if err := f.Write([]byte("first value, the longer one")); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, next := range []string{"second", "", "third value, longer than all before it"} {
		if err := f.Write([]byte(next)); err != nil {
			t.Fatal(err)
		}
		if f.Path() != path {
			t.Fatalf("path moved to %s", f.Path())
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != next {
			t.Errorf("by path: %q, %v; want %q", got, err, next)
		}
		buf := make([]byte, 100)
		n, _ := held.ReadAt(buf, 0)
		if string(buf[:n]) != next {
			t.Errorf("held open: %q, want %q", buf[:n], next)
		}
		if f.Size() != len(next) {
			t.Errorf("size %d, want %d", f.Size(), len(next))
		}
	}
}

func TestLargeContents(t *testing.T) {
	f := newFile(t, "big")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if err := f.Write(big); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Path())
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(big))
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err == nil && rl.Cur >= 4<<20 && !f.Locked() {
		t.Errorf("1 MiB not locked in memory although RLIMIT_MEMLOCK is %d", rl.Cur)
	}
}

// TestInheritableSurvivesExec is secretrun replacing itself with the
// child: the descriptor must survive execve at its number, and only after
// Inheritable.
func TestInheritableSurvivesExec(t *testing.T) {
	f := newFile(t, "exec")
	if err := f.Write([]byte("through-exec")); err != nil {
		t.Fatal(err)
	}
	// os/exec closes nothing beyond close-on-exec, as execve itself.
	if out, err := exec.Command("cat", f.Path()).CombinedOutput(); err == nil {
		t.Errorf("a process started before Inheritable read the file: %q", out)
	}
	if err := f.Inheritable(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cat", f.Path()).Output()
	if err != nil || string(out) != "through-exec" {
		t.Errorf("child read %q, %v", out, err)
	}
}

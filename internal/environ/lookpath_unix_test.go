//go:build unix

package environ

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin, plain, later := filepath.Join(dir, "bin"), filepath.Join(dir, "plain"), filepath.Join(dir, "later")
	for _, d := range []string{bin, plain, later} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "tool"), 0o755)
	write(filepath.Join(plain, "tool"), 0o644)
	write(filepath.Join(plain, "data"), 0o644)
	write(filepath.Join(later, "tool"), 0o755)
	if err := os.Mkdir(filepath.Join(bin, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, path string
		want       string
		err        error
	}{
		{"tool", bin + ":" + later, filepath.Join(bin, "tool"), nil},
		// Not executable where first found: the next one in PATH wins.
		{"tool", plain + ":" + later, filepath.Join(later, "tool"), nil},
		// Found only as a plain file: that, not "not found", is the error.
		{"data", bin + ":" + plain, "", syscall.EACCES},
		{"adir", bin, "", syscall.EISDIR},
		{"missing", bin + ":" + later, "", syscall.ENOENT},
		// A name with a slash is not looked up.
		{filepath.Join(plain, "tool"), bin, filepath.Join(plain, "tool"), syscall.EACCES},
		{filepath.Join(later, "tool"), "", filepath.Join(later, "tool"), nil},
	} {
		got, err := LookPath(c.name, []string{"PATH=/nowhere", "PATH=" + c.path})
		if got != c.want || !errors.Is(err, c.err) || (err == nil) != (c.err == nil) {
			t.Errorf("LookPath(%q) in PATH=%s = %q, %v; want %q, %v", c.name, c.path, got, err, c.want, c.err)
		}
	}
}

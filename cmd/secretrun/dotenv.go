package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
)

// isDotenv reports whether a file name looks like a dotenv file holding real
// values: .env, .env.production, prod.env; templates are fine.
func isDotenv(name string) bool {
	if !(name == ".env" || strings.HasPrefix(name, ".env.") || strings.HasSuffix(name, ".env")) {
		return false
	}
	for _, template := range []string{".example", ".sample", ".template", ".dist", ".defaults"} {
		if strings.HasSuffix(name, template) {
			return false
		}
	}
	return true
}

// dotenvWarnings looks for dotenv files in the tree under dir, tracked by
// git, and anywhere in git history: the classic way secrets leak.
func dotenvWarnings(dir string) []string {
	root := dir
	if top, err := git(dir, "rev-parse", "--show-toplevel"); err == nil {
		root = strings.TrimSpace(string(top))
	}
	var warnings []string
	tracked := map[string]bool{}
	if out, err := git(root, "ls-files", "-z"); err == nil {
		for _, f := range bytes.Split(out, []byte{0}) {
			if isDotenv(filepath.Base(string(f))) {
				tracked[string(f)] = true
				warnings = append(warnings, string(f)+" is tracked by git: remove it (git rm --cached), and rotate every value it holds, since it is in history")
			}
		}
	}
	_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() {
			switch e.Name() {
			case ".git", "node_modules", "vendor", ".venv":
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if isDotenv(e.Name()) && !tracked[filepath.ToSlash(rel)] {
			warnings = append(warnings, rel+" is a .env file in the tree: move its values to the secret manager and delete it")
		}
		return nil
	})
	if out, err := git(root, "log", "--all", "--format=commit %h", "--name-only", "--diff-filter=A"); err == nil {
		var commit string
		seen := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			line := sc.Text()
			if c, ok := strings.CutPrefix(line, "commit "); ok {
				commit = c
				continue
			}
			if line != "" && isDotenv(filepath.Base(line)) && !seen[line] {
				seen[line] = true
				warnings = append(warnings, line+" was committed in "+commit+" and stays in git history: rotate every value it held")
			}
		}
	}
	return warnings
}

func git(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	return cmd.Output()
}

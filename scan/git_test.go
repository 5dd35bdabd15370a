package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// history writes a git history with `git fast-import`, as fast as git can
// take it: commits on branches, each adding, changing or deleting files.
type history struct {
	t      testing.TB
	dir    string
	stream bytes.Buffer
	mark   int
	when   int64
}

func newHistory(t testing.TB) *history {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the scan tests need git: %v", err)
	}
	h := &history{t: t, dir: t.TempDir(), when: 1_700_000_000}
	h.git("init", "-q", "-b", "main")
	return h
}

func (h *history) git(args ...string) string {
	h.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", h.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// change is one file set (content) or deleted (content nil) by a commit.
type change struct {
	path    string
	content []byte
}

// commit adds a commit to branch, from the mark given or the branch's tip
// (0), and returns its mark.
func (h *history) commit(branch string, from int, msg string, changes ...change) int {
	h.mark++
	h.when += 60
	fmt.Fprintf(&h.stream, "commit refs/heads/%s\nmark :%d\ncommitter t <t@example.com> %d +0000\ndata %d\n%s\n", branch, h.mark, h.when, len(msg), msg)
	if from > 0 {
		fmt.Fprintf(&h.stream, "from :%d\n", from)
	}
	for _, c := range changes {
		if c.content == nil {
			fmt.Fprintf(&h.stream, "D %s\n", c.path)
			continue
		}
		fmt.Fprintf(&h.stream, "M 100644 inline %s\ndata %d\n", c.path, len(c.content))
		h.stream.Write(c.content)
		h.stream.WriteByte('\n')
	}
	h.stream.WriteByte('\n')
	return h.mark
}

// load imports the stream, exports the marks' commit names and checks out
// main.
func (h *history) load() map[int]string {
	h.t.Helper()
	marks := filepath.Join(h.t.TempDir(), "marks")
	cmd := exec.Command("git", "-C", h.dir, "fast-import", "--quiet", "--export-marks="+marks)
	cmd.Stdin = &h.stream
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("git fast-import: %v: %s", err, out)
	}
	h.git("checkout", "-q", "-f", "main")
	b, err := os.ReadFile(marks)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m int
		var sha string
		if _, err := fmt.Sscanf(line, ":%d %s", &m, &sha); err != nil {
			h.t.Fatalf("marks: %q: %v", line, err)
		}
		out[m] = sha
	}
	return out
}

// filler is ordinary source text for commit n.
func filler(n int) []byte {
	var b bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&b, "func f%d_%d() int { return %d } // commit %d\n", n, i, n*i, n)
	}
	return b.Bytes()
}

// The leak scenario of a real repository, a few hundred commits long:
//   - baseB64 is committed base64-encoded in one commit, deleted later;
//   - urlValue is committed URL-escaped on a branch that is not checked out;
//   - staged is only in the index: added, then changed in the work tree.
const (
	baseB64Value = "AKIA5EXAMPLE/wJalrXUtnFEMI+K7MDENG"
	urlValue     = "p@ss w0rd/with&odd=chars"
	stagedValue  = "ghp_stagedOnly0123456789abcdefXYZ"
)

func TestLeaksInHistoryIndexAndTree(t *testing.T) {
	h := newHistory(t)
	var leakCommit, branchCommit int
	var tip int
	for n := 1; n <= 300; n++ {
		changes := []change{{path: fmt.Sprintf("src/pkg%d/file%d.go", n%7, n%13), content: filler(n)}}
		switch n {
		case 120:
			changes = append(changes, change{path: "deploy/creds.b64", content: []byte("# backup\n" + base64.StdEncoding.EncodeToString([]byte(baseB64Value)) + "\n")})
		case 200:
			changes = append(changes, change{path: "deploy/creds.b64"})
		}
		tip = h.commit("main", 0, fmt.Sprintf("commit %d", n), changes...)
		if n == 120 {
			leakCommit = tip
		}
		if n == 150 {
			// A branch off main, never merged.
			h.commit("feature", tip, "feature: one", change{path: "README.md", content: []byte("hello\n")})
			branchCommit = h.commit("feature", 0, "feature: call the API", change{path: "config/api.txt",
				content: []byte("endpoint: https://api.example.com/v1\nurl: https://api.example.com/?token=" + url.QueryEscape(urlValue) + "&v=2\n")})
			h.commit("feature", 0, "feature: more", change{path: "README.md", content: []byte("hello again\n")})
		}
	}
	marks := h.load()
	write(t, h.dir, "notes.txt", "release notes\ntoken: "+stagedValue+"\n")
	h.git("add", "notes.txt")
	write(t, h.dir, "notes.txt", "release notes\ntoken: (in the secret manager now)\n")

	s := New([]Value{
		{Variable: "AWS_SECRET", Source: "vault secret/aws", Value: secret(baseB64Value)},
		{Variable: "API_PASSWORD", Source: "vault secret/api", Value: secret(urlValue)},
		{Variable: "GITHUB_TOKEN", Source: "keyring github", Value: secret(stagedValue)},
	})
	ctx := context.Background()

	tree, _, err := s.Tree(ctx, []string{h.dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) != 0 {
		t.Errorf("a scan of the work tree found %+v; none of the values is in it", tree)
	}

	hist, stats, err := s.History(ctx, h.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Finding{
		{Commit: marks[leakCommit], Path: "deploy/creds.b64", Line: 2, Variable: "AWS_SECRET", Source: "vault secret/aws", Encoding: Base64},
		{Commit: marks[branchCommit], Path: "config/api.txt", Line: 2, Variable: "API_PASSWORD", Source: "vault secret/api", Encoding: URL},
	}
	Sort(want)
	if fmt.Sprint(hist) != fmt.Sprint(want) {
		t.Errorf("history:\ngot  %+v\nwant %+v", hist, want)
	}
	// Every blob once: 300 versions of files on main, the creds file, and
	// the branch's three.
	if stats.Files < 300 || stats.Files > 305 {
		t.Errorf("history searched %d blobs; want each of the about 304 once", stats.Files)
	}

	staged, _, err := s.Staged(ctx, h.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantStaged := []Finding{{Staged: true, Path: "notes.txt", Line: 2, Variable: "GITHUB_TOKEN", Source: "keyring github", Encoding: Plain}}
	if fmt.Sprint(staged) != fmt.Sprint(wantStaged) {
		t.Errorf("staged:\ngot  %+v\nwant %+v", staged, wantStaged)
	}

	// Limited to other paths, the history holds nothing.
	none, _, err := s.History(ctx, h.dir, func(p string) bool { return strings.HasPrefix(p, "src/") })
	if err != nil || len(none) != 0 {
		t.Errorf("history of src/: %+v, %v; want nothing", none, err)
	}
}

// TestMergeBringsItsOwnBlob: a value written while resolving a merge is in
// no parent; the merge is the commit that brought it in.
func TestMergeBringsItsOwnBlob(t *testing.T) {
	h := newHistory(t)
	base := h.commit("main", 0, "base", change{path: "a.txt", content: []byte("a\n")})
	side := h.commit("side", base, "side", change{path: "b.txt", content: []byte("b\n")})
	h.commit("main", 0, "main", change{path: "c.txt", content: []byte("c\n")})
	h.mark++
	fmt.Fprintf(&h.stream, "commit refs/heads/main\nmark :%d\ncommitter t <t@example.com> 1700009999 +0000\ndata 5\nmerge\nmerge :%d\nM 100644 inline a.txt\ndata %d\n%s\n\n",
		h.mark, side, len(baseB64Value)+3, "a\n"+baseB64Value)
	merge := h.mark
	marks := h.load()
	got, _, err := New([]Value{{Variable: "K", Value: secret(baseB64Value)}}).History(context.Background(), h.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Commit != marks[merge] || got[0].Path != "a.txt" || got[0].Line != 2 {
		t.Errorf("got %+v, want one finding in the merge %s", got, marks[merge])
	}
}

func TestNotARepository(t *testing.T) {
	_, _, err := New([]Value{{Variable: "K", Value: secret(baseB64Value)}}).History(context.Background(), t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "not a git repository") {
		t.Errorf("History outside a repository: %v, want git's own message", err)
	}
	if _, err := TopLevel(context.Background(), t.TempDir()); err == nil {
		t.Error("TopLevel outside a repository succeeded")
	}
}

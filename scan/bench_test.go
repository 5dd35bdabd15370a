package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// largeHistory builds a repository of 4000 commits on four branches, each
// commit changing three of 400 source files of about 6 KB, packed with
// deltas as `git gc` leaves a real repository; two values are buried in it.
func largeHistory(b *testing.B) (dir string, values []Value) {
	b.Helper()
	start := time.Now()
	h := newHistory(b)
	r := rand.New(rand.NewPCG(3, 4))
	words := strings.Fields("func return if else for range struct type interface map string int error nil ctx err var const package import defer go select case")
	files := make([][]string, 400)
	for i := range files {
		lines := make([]string, 120)
		for j := range lines {
			var l strings.Builder
			for range 8 {
				l.WriteString(words[r.IntN(len(words))])
				l.WriteByte(' ')
			}
			lines[j] = l.String()
		}
		files[i] = lines
	}
	values = []Value{
		{Variable: "AWS_SECRET", Source: "vault secret/aws", Value: secret(baseB64Value)},
		{Variable: "API_PASSWORD", Source: "vault secret/api", Value: secret(urlValue)},
	}
	branches := []string{"main", "release", "feature-a", "feature-b"}
	for n := 1; n <= 4000; n++ {
		branch := branches[n%len(branches)]
		from := 0
		if n <= len(branches) && n > 1 {
			from = 1
		}
		var changes []change
		for range 3 {
			f := r.IntN(len(files))
			files[f][r.IntN(len(files[f]))] = fmt.Sprintf("x := %d // changed in %d", r.Int(), n)
			content := strings.Join(files[f], "\n")
			if n == 1777 && len(changes) == 0 {
				content += "\n// " + base64.StdEncoding.EncodeToString([]byte(baseB64Value))
			}
			changes = append(changes, change{path: fmt.Sprintf("pkg%d/file%d.go", f%20, f), content: []byte(content)})
		}
		h.commit(branch, from, fmt.Sprintf("commit %d", n), changes...)
	}
	h.load()
	h.git("repack", "-a", "-d", "-q")
	b.Logf("generated and packed the history in %v", time.Since(start).Round(time.Millisecond))
	return h.dir, values
}

// BenchmarkHistory measures `scan --history` on a large history, against
// the common shell baseline `git log -p --all | grep -F -f values`, which
// reads only changed lines and finds no encoded form.
func BenchmarkHistory(b *testing.B) {
	dir, values := largeHistory(b)
	size, err := exec.Command("du", "-sk", filepath.Join(dir, ".git")).Output()
	if err == nil {
		b.Logf("repository: %s KB packed", strings.Fields(string(size))[0])
	}
	// The total size of the history's blobs: the same yardstick for both,
	// so their MB/s compare as their times do.
	var blobBytes int64
	for _, workers := range []int{1, 0} {
		name := "secretrun/cat-file=1"
		if workers == 0 {
			name = "secretrun/cat-file=auto"
		}
		b.Run(name, func(b *testing.B) {
			s := New(values)
			s.workers = workers
			var stats Stats
			for b.Loop() {
				fds, st, err := s.History(context.Background(), dir, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(fds) != 1 {
					b.Fatalf("found %+v, want the one base64 value", fds)
				}
				stats = st
			}
			blobBytes = stats.Bytes
			b.SetBytes(stats.Bytes)
			b.ReportMetric(float64(stats.Files), "blobs")
		})
	}
	b.Run("git-log-p-grep", func(b *testing.B) {
		patterns := filepath.Join(b.TempDir(), "values")
		var list bytes.Buffer
		for _, v := range values {
			list.WriteString(v.Value.Reveal() + "\n")
		}
		if err := os.WriteFile(patterns, list.Bytes(), 0o600); err != nil {
			b.Fatal(err)
		}
		patches, err := exec.Command("sh", "-c", `git -C "$1" log -p --all | wc -c`, "sh", dir).Output()
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("git log -p --all writes %s bytes of patches", strings.TrimSpace(string(patches)))
		for b.Loop() {
			// grep exits 1 when it finds nothing, which is the answer here:
			// the value is only in the history base64-encoded.
			out, err := exec.Command("sh", "-c", `git -C "$1" log -p --all | grep -F -c -f "$2"; test $? -le 1`, "sh", dir, patterns).CombinedOutput()
			if err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
		b.SetBytes(blobBytes)
	})
}

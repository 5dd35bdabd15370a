package startup

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"text/template"
)

// rssFileKiB is the resident memory mapped from files (the executable and
// libraries) of this process, from /proc/self/status.
func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

func TestReleasedCodeComesBack(t *testing.T) {
	before := rssFileKiB(t)
	releaseCode()
	after := rssFileKiB(t)
	if after >= before {
		t.Errorf("resident file-backed memory %d kB before, %d kB after: nothing released", before, after)
	}
	// Code that had not run since, and read-only data, are mapped back.
	var out strings.Builder
	tmpl := template.Must(template.New("t").Parse("{{range .}}{{.}},{{end}}"))
	if err := tmpl.Execute(&out, []int{1, 2, 3}); err != nil || out.String() != "1,2,3," {
		t.Fatalf("after the release: %q, %v", out.String(), err)
	}
	t.Logf("RssFile %d kB → %d kB", before, after)
}

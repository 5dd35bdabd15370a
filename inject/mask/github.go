package mask

import (
	"bufio"
	"io"
	"strings"
)

// WriteAddMask writes a GitHub Actions `::add-mask::` workflow command for
// each value to w, which should be the stdout the runner reads, so that the
// runner masks the values in the job log too. The runner masks by line, so a
// multi-line value is registered one line at a time. Empty lines, and lines
// shorter than MinLen for the same reason the Writer skips them, are left
// out. The caller decides whether it runs under Actions (GITHUB_ACTIONS=true).
func WriteAddMask(w io.Writer, values []string) error {
	bw := bufio.NewWriter(w)
	for _, v := range values {
		for line := range strings.SplitSeq(v, "\n") {
			line = strings.TrimSuffix(line, "\r")
			if len(line) < MinLen {
				continue
			}
			bw.WriteString("::add-mask::")
			bw.WriteString(escapeCommandData(line))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// escapeCommandData escapes a workflow command's data as the runner expects
// (and as @actions/core does), so a value that contains "%0A" or a stray
// carriage return reaches the runner unchanged.
func escapeCommandData(s string) string {
	if !strings.ContainsAny(s, "%\r\n") {
		return s
	}
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

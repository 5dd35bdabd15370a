package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
)

// patterns returns every byte string that is masked for values, longest
// first and without duplicates, and the indices of the values that are too
// short to be masked.
func patterns(values []string) (pats []string, skipped []int) {
	seen := make(map[string]bool)
	addForm := func(s string) {
		if len(s) >= MinLen && !seen[s] {
			seen[s] = true
			pats = append(pats, s)
		}
	}
	for i, v := range values {
		if len(v) < MinLen {
			if len(v) > 0 {
				skipped = append(skipped, i)
			}
			continue
		}
		for _, f := range forms(v) {
			addForm(f)
		}
	}
	sort.SliceStable(pats, func(i, j int) bool { return len(pats[i]) > len(pats[j]) })
	return pats, skipped
}

// forms lists the ways a value commonly shows up in program output.
func forms(v string) []string {
	b := []byte(v)
	out := []string{
		v,
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
		url.QueryEscape(v),
		url.PathEscape(v),
		JSONBody(v, true),
		JSONBody(v, false),
	}
	// A terminal's output processing (ONLCR) writes each line feed as CR
	// LF: a multi-line value printed by a child on a pseudo-terminal, a
	// PEM key, reaches secretrun in that form.
	if strings.Contains(v, "\n") {
		out = append(out, strings.ReplaceAll(v, "\n", "\r\n"))
	}
	// A value that is part of a larger encoded blob (an HTTP Basic
	// credential "user:password", a docker config "auth" field) lands at an
	// arbitrary offset within a base64 group, where its encoding differs
	// from the standalone one in the first and last characters only. The
	// characters in between depend on the value alone, so mask those for
	// each of the three alignments.
	for k := 0; k < 3; k++ {
		out = append(out,
			Base64Core(base64.RawStdEncoding, b, k),
			Base64Core(base64.RawURLEncoding, b, k))
	}
	return out
}

// JSONBody is v as encoding/json writes it inside a string literal, with or
// without the HTML-safe \u escapes for <, > and &.
func JSONBody(v string, escapeHTML bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	s := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return string(s[1 : len(s)-1])
}

// Base64Core is the part of the encoding of v, preceded by k bytes of
// anything and followed by anything, that is the same whatever those bytes
// are: the characters whose six bits all come from v.
func Base64Core(enc *base64.Encoding, v []byte, k int) string {
	framed := make([]byte, k+len(v))
	copy(framed[k:], v)
	s := enc.EncodeToString(framed)
	lo := (8*k + 5) / 6
	hi := 8 * (k + len(v)) / 6
	if hi <= lo {
		return ""
	}
	return s[lo:hi]
}

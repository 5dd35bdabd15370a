// Package scan searches files, the git index and every blob of a git
// history for the real values of secrets, and their encoded forms, for
// `secretrun scan`. A finding says where, which variable and which
// encoding; it never holds the value or any part of it.
package scan

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/secretrun/secretrun/inject/mask"
	"github.com/secretrun/secretrun/providers"
)

// MinLen is the length of the shortest value searched for: shorter ones
// would be found everywhere, as they would be masked everywhere.
const MinLen = mask.MinLen

// Value is one secret to search for.
type Value struct {
	// Variable is the variable the value is given to, STRIPE_KEY.
	Variable string
	// Source says where it was read, without the value: `vault
	// secret/myapp#api_key@3`.
	Source string
	Value  providers.Secret
}

// The encodings a value is searched in. A value is found in the first of
// them that writes it, so a form that reads the same as the value itself
// is reported as plain.
const (
	Plain  = "plain"
	Base64 = "base64"
	URL    = "url"
	JSON   = "json"
	Hex    = "hex"
)

// Finding is one value found at one place.
type Finding struct {
	// Commit is the first commit that brought the blob in, with
	// History; empty otherwise.
	Commit string `json:"commit,omitempty"`
	// Staged is set for a finding in the index.
	Staged bool `json:"staged,omitempty"`
	// Path is the file: as walked for the tree, relative to the
	// repository's top for the index and history.
	Path     string `json:"path"`
	Line     int    `json:"line"`
	Variable string `json:"variable"`
	Source   string `json:"source"`
	Encoding string `json:"encoding"`
}

// Scanner searches for a set of values.
type Scanner struct {
	values []Value
	finder *mask.Finder
	// forms are what each of the finder's patterns stands for.
	forms   [][]form
	skipped []string
	// workers is how many `git cat-file` processes read a history; zero
	// chooses by the number of CPUs.
	workers int
}

// form is one value written in one encoding.
type form struct {
	value    int
	encoding string
}

// New prepares a Scanner for values. Values shorter than MinLen are left
// out; Skipped names their variables.
func New(values []Value) *Scanner {
	s := &Scanner{values: values}
	index := map[string]int{}
	var pats []string
	for vi, v := range values {
		raw := v.Value.Reveal()
		if len(raw) < MinLen {
			if len(raw) > 0 {
				s.skipped = append(s.skipped, v.Variable)
			}
			continue
		}
		for _, e := range encodings(raw) {
			if len(e.text) < MinLen {
				continue
			}
			at, ok := index[e.text]
			if !ok {
				at = len(pats)
				index[e.text] = at
				pats = append(pats, e.text)
				s.forms = append(s.forms, nil)
			}
			f := form{vi, e.encoding}
			if !containsForm(s.forms[at], f) {
				s.forms[at] = append(s.forms[at], f)
			}
		}
	}
	s.finder = mask.NewFinder(pats)
	return s
}

func containsForm(list []form, f form) bool {
	for _, g := range list {
		if g.value == f.value {
			return true
		}
	}
	return false
}

// Skipped names the variables whose values are too short to search for.
func (s *Scanner) Skipped() []string { return s.skipped }

// Empty reports whether there is nothing to search for.
func (s *Scanner) Empty() bool { return s.finder == nil }

type encoded struct{ encoding, text string }

// encodings lists the forms a value is searched in: those --mask redacts
// in output, and hex.
func encodings(v string) []encoded {
	b := []byte(v)
	out := []encoded{
		{Plain, v},
		{Base64, base64.StdEncoding.EncodeToString(b)},
		{Base64, base64.RawStdEncoding.EncodeToString(b)},
		{Base64, base64.URLEncoding.EncodeToString(b)},
		{Base64, base64.RawURLEncoding.EncodeToString(b)},
	}
	// Inside a larger encoded blob ("user:password" in an HTTP Basic
	// credential, a docker config's auth) the value starts at any offset
	// within a base64 group: only the characters whose six bits all come
	// from the value are the same whatever surrounds it.
	for k := range 3 {
		out = append(out,
			encoded{Base64, mask.Base64Core(base64.RawStdEncoding, b, k)},
			encoded{Base64, mask.Base64Core(base64.RawURLEncoding, b, k)})
	}
	out = append(out,
		encoded{URL, url.QueryEscape(v)},
		encoded{URL, url.PathEscape(v)},
		encoded{JSON, mask.JSONBody(v, true)},
		encoded{JSON, mask.JSONBody(v, false)},
		encoded{Hex, hex.EncodeToString(b)},
		encoded{Hex, strings.ToUpper(hex.EncodeToString(b))},
	)
	return out
}

// chunkSize is how much of a file is searched at a time.
const chunkSize = 256 << 10

// hit is a form found on a line.
type hit struct {
	line    int
	pattern int
}

// search reads r to the end and calls found for every form in it, in order,
// with its line. The stream is searched in chunks that overlap by the
// longest form less one byte, so a form that spans two chunks is found
// once.
func (s *Scanner) search(r io.Reader, buf []byte, found func(hit)) error {
	keep := s.finder.MaxLen() - 1
	if len(buf) < chunkSize+keep {
		buf = make([]byte, chunkSize+keep)
	}
	buf = buf[:chunkSize+keep]
	have, seen, line := 0, 0, 1
	nl := []byte{'\n'}
	for {
		n, err := io.ReadFull(r, buf[have:])
		have += n
		data := buf[:have]
		counted, at := 0, line
		s.finder.Find(data, func(start, p int) {
			if start+s.finder.Len(p) <= seen {
				return // wholly in the previous chunk, and reported there
			}
			at += bytes.Count(data[counted:start], nl)
			counted = start
			found(hit{at, p})
		})
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return err
		}
		cut := have - keep
		line += bytes.Count(data[:cut], nl)
		copy(buf, data[cut:])
		have, seen = keep, keep
	}
}

// findings turns the hits in one file into findings: one per line,
// variable and encoding.
func (s *Scanner) findings(hits []hit, base Finding) []Finding {
	type key struct {
		line, value int
		encoding    string
	}
	seen := map[key]bool{}
	var out []Finding
	for _, h := range hits {
		for _, f := range s.forms[h.pattern] {
			k := key{h.line, f.value, f.encoding}
			if seen[k] {
				continue
			}
			seen[k] = true
			fd := base
			fd.Line, fd.Variable, fd.Source, fd.Encoding = h.line, s.values[f.value].Variable, s.values[f.value].Source, f.encoding
			out = append(out, fd)
		}
	}
	return out
}

// searchFile returns the findings in one stream.
func (s *Scanner) searchFile(r io.Reader, buf []byte, base Finding) ([]Finding, error) {
	var hits []hit
	if err := s.search(r, buf, func(h hit) { hits = append(hits, h) }); err != nil {
		return nil, err
	}
	if len(hits) == 0 {
		return nil, nil
	}
	return s.findings(hits, base), nil
}

// Sort orders findings by commit, path, line and variable.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		switch {
		case a.Staged != b.Staged:
			return !a.Staged
		case a.Commit != b.Commit:
			return a.Commit < b.Commit
		case a.Path != b.Path:
			return a.Path < b.Path
		case a.Line != b.Line:
			return a.Line < b.Line
		case a.Variable != b.Variable:
			return a.Variable < b.Variable
		}
		return a.Encoding < b.Encoding
	})
}

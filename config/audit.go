package config

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Audit holds the `audit:` settings. Sink is "" when the file has none.
type Audit struct {
	// Sink is stderr, syslog, journald or file:PATH; a relative PATH is
	// relative to the config file's directory.
	Sink string `yaml:"sink"`
	// FingerprintKey, when set, is the HMAC-SHA256 key of the values'
	// fingerprints; ${VAR} is expanded from secretrun's own environment.
	FingerprintKey string `yaml:"fingerprint_key"`
}

// Audit decodes and checks the `audit:` settings, expanding ${VAR} with
// lookup.
func (f *File) Audit(lookup func(string) (string, bool)) (Audit, error) {
	var a Audit
	if !f.audits {
		return a, nil
	}
	d, err := parse(f.Name, f.src)
	if err != nil {
		return a, err
	}
	node := valueOf(d.root, "audit", nil)
	if node == nil || isNull(node) {
		return a, nil
	}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	if err := (&expander{file: d.file, lookup: lookup}).walk("audit", node); err != nil {
		return a, err
	}
	if err := decodeStrict(d.file, "audit", node, &a); err != nil {
		return a, err
	}
	m, _ := node.(*ast.MappingNode)
	at := func(key string) ast.Node {
		if m == nil {
			return node
		}
		return valueOf(m, key, node)
	}
	switch path, isFile := strings.CutPrefix(a.Sink, "file:"); {
	case a.Sink == "stderr", a.Sink == "syslog", a.Sink == "journald":
	case isFile && path != "":
		if !filepath.IsAbs(path) {
			a.Sink = "file:" + filepath.Join(filepath.Dir(f.Name), path)
		}
	default:
		return a, errorAt(d.file, at("sink"), "audit.sink", "unknown sink %q (one of stderr, file:PATH, syslog, journald)", a.Sink)
	}
	return a, nil
}

// Digest is the SHA-256 of the file's text, "sha256:HEX", for audit
// records: which config a process ran with.
func (f *File) Digest() string {
	sum := sha256.Sum256(f.src)
	return "sha256:" + hex.EncodeToString(sum[:])
}

package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/providers"
)

const testValue = "sk_live/Zq8+x9w&Pa55=word"

func scanner(values ...string) *Scanner {
	var vs []Value
	for i, v := range values {
		vs = append(vs, Value{Variable: "VAR" + string(rune('A'+i)), Source: "keyring \"local\" VAR", Value: providers.NewSecret(v)})
	}
	return New(vs)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEveryEncodingIsFound writes the value in each encoding a leak takes,
// one file each, and expects each file reported with that encoding and
// line, and nothing else.
func TestEveryEncodingIsFound(t *testing.T) {
	b := []byte(testValue)
	dir := t.TempDir()
	cases := map[string]struct{ content, encoding string }{
		"plain.txt":         {"x\nAPI=" + testValue + "\n", Plain},
		"std.txt":           {"x\n" + base64.StdEncoding.EncodeToString(b), Base64},
		"raw-url.txt":       {"x\n" + base64.RawURLEncoding.EncodeToString(b), Base64},
		"basic-auth.txt":    {"x\nAuthorization: Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+testValue)), Base64},
		"docker.json":       {"x\n{\"auth\":\"" + base64.StdEncoding.EncodeToString([]byte("ab:"+testValue+"\n")) + "\"}", Base64},
		"query.txt":         {"x\nhttps://api/?key=" + url.QueryEscape(testValue) + "&x=1", URL},
		"path.txt":          {"x\nhttps://api/" + url.PathEscape(testValue) + "/", URL},
		"escaped.json":      {"x\n{\"k\": \"" + strings.ReplaceAll(testValue, "&", `\u0026`) + "\"}", JSON},
		"hex.txt":           {"x\n" + hex.EncodeToString(b), Hex},
		"upper-hex.txt":     {"x\n0x" + strings.ToUpper(hex.EncodeToString(b)), Hex},
		"nothing.txt":       {"sk_live/Zq8+x9w&Pa55=wor\n" + base64.StdEncoding.EncodeToString(b[1:]), ""},
		"sub/dir/plain.txt": {"\n\n\n\nx" + testValue, Plain},
	}
	for name, c := range cases {
		write(t, dir, name, c.content)
	}
	got, stats, err := scanner(testValue).Tree(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != len(cases) {
		t.Errorf("searched %d files, want %d", stats.Files, len(cases))
	}
	found := map[string]Finding{}
	for _, f := range got {
		rel, _ := filepath.Rel(dir, f.Path)
		if prev, dup := found[rel]; dup {
			t.Errorf("%s reported twice: %+v and %+v", rel, prev, f)
		}
		found[rel] = f
	}
	for name, c := range cases {
		f, ok := found[name]
		switch {
		case c.encoding == "" && ok:
			t.Errorf("%s: found %+v in a file without the value", name, f)
		case c.encoding == "":
		case !ok:
			t.Errorf("%s: the %s form was not found", name, c.encoding)
		case f.Encoding != c.encoding:
			t.Errorf("%s: encoding %s, want %s", name, f.Encoding, c.encoding)
		case f.Line != 2 && name != "sub/dir/plain.txt", f.Line != 5 && name == "sub/dir/plain.txt":
			t.Errorf("%s: line %d, want the value's line", name, f.Line)
		case f.Variable != "VARA" || f.Source != `keyring "local" VAR`:
			t.Errorf("%s: variable %q source %q", name, f.Variable, f.Source)
		}
	}
}

// TestAcrossChunks puts the value across every chunk boundary offset in a
// file larger than a chunk, and counts lines past the boundary.
func TestAcrossChunks(t *testing.T) {
	s := scanner(testValue)
	// The first chunk is a chunk and the overlap long.
	boundary := chunkSize + s.finder.MaxLen() - 1
	head := bytes.Repeat([]byte("0123456789abcde\n"), 2*chunkSize/16)
	for at := boundary - len(testValue) - 2; at <= boundary+2; at++ {
		data := append(append(append([]byte{}, head[:at]...), testValue...), "\nmore\n"...)
		got, err := s.searchFile(bytes.NewReader(data), nil, Finding{Path: "f"})
		if err != nil {
			t.Fatal(err)
		}
		wantLine := bytes.Count(data[:at], []byte("\n")) + 1
		if len(got) != 1 || got[0].Line != wantLine {
			t.Fatalf("value at %d (chunk boundary %+d): got %+v, want one finding on line %d", at, at-boundary, got, wantLine)
		}
	}
}

// TestShortValuesAreSkipped: a value shorter than the masking minimum
// would be found in every file; it is named, not searched for.
func TestShortValuesAreSkipped(t *testing.T) {
	s := New([]Value{
		{Variable: "PIN", Value: providers.NewSecret("123")},
		{Variable: "EMPTY", Value: providers.NewSecret("")},
		{Variable: "TOKEN", Value: providers.NewSecret("tok-abcdef")},
	})
	if got := s.Skipped(); len(got) != 1 || got[0] != "PIN" {
		t.Errorf("Skipped() = %v, want [PIN]", got)
	}
	if s.Empty() {
		t.Fatal("a scanner for TOKEN is empty")
	}
	if New([]Value{{Variable: "PIN", Value: providers.NewSecret("123")}}).Empty() == false {
		t.Error("a scanner with only a short value is not empty")
	}
}

// TestSharedValueNamesEveryVariable: two variables holding one value are
// both reported, since both must be rotated.
func TestSharedValueNamesEveryVariable(t *testing.T) {
	s := New([]Value{
		{Variable: "A", Value: providers.NewSecret(testValue)},
		{Variable: "B", Value: providers.NewSecret(testValue)},
	})
	got, err := s.searchFile(strings.NewReader(testValue), nil, Finding{Path: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Variable != "A" || got[1].Variable != "B" {
		t.Errorf("got %+v, want A and B", got)
	}
}

func secret(v string) providers.Secret { return providers.NewSecret(v) }

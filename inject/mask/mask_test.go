package mask

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// noIdle keeps the idle flush out of tests that are about matching, so a
// slow machine cannot change what they see.
var noIdle = Options{IdleFlush: -1}

// maskAll writes each chunk to a new Writer for values and returns what
// came out after Close.
func maskAll(t testing.TB, values []string, chunks ...[]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := New(&out, values, noIdle)
	for _, c := range chunks {
		n, err := w.Write(c)
		if n != len(c) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(c))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.Bytes()
}

// reference masks in the slow, obvious way: every occurrence of every
// pattern, overlapping occurrences merged, one Mask per merged run.
func reference(in []byte, pats []string) []byte {
	var iv []span
	for _, p := range pats {
		for i := 0; i+len(p) <= len(in); i++ {
			if string(in[i:i+len(p)]) == p {
				iv = append(iv, span{i, i + len(p)})
			}
		}
	}
	sort.Slice(iv, func(a, b int) bool { return iv[a].start < iv[b].start })
	var out []byte
	pos := 0
	for k := 0; k < len(iv); {
		s, e := iv[k].start, iv[k].end
		for k++; k < len(iv) && iv[k].start < e; k++ {
			e = max(e, iv[k].end)
		}
		out = append(out, in[pos:s]...)
		out = append(out, Mask...)
		pos = e
	}
	return append(out, in[pos:]...)
}

// A value with characters that every encoding treats differently: '+' and
// '/' in its base64, reserved characters for URLs, HTML and control
// characters for JSON.
const tricky = "p@ss w/rd+<&>\"\\\n\t\x01é~?"

func TestMaskForms(t *testing.T) {
	b := []byte(tricky)
	jsonHTML := `p@ss w/rd+\u003c\u0026\u003e\"\\\n\t\u0001é~?`
	tests := []struct {
		name, form string
	}{
		{"raw", tricky},
		{"base64 std padded", base64.StdEncoding.EncodeToString(b)},
		{"base64 std unpadded", base64.RawStdEncoding.EncodeToString(b)},
		{"base64 url padded", base64.URLEncoding.EncodeToString(b)},
		{"base64 url unpadded", base64.RawURLEncoding.EncodeToString(b)},
		{"query escaped", url.QueryEscape(tricky)},
		{"path escaped", url.PathEscape(tricky)},
		{"json escaped", jsonHTML},
		{"json without html escapes", `p@ss w/rd+<&>\"\\\n\t\u0001é~?`},
		{"line feeds as a terminal writes them", strings.ReplaceAll(tricky, "\n", "\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "before " + tt.form + " after\n"
			got := string(maskAll(t, []string{tricky}, []byte(in)))
			if want := "before " + Mask + " after\n"; got != want {
				t.Errorf("masked %q\n got %q\nwant %q", in, got, want)
			}
		})
	}
}

// The forms must really differ, or TestMaskForms proves less than it says.
func TestMaskFormsAreDistinct(t *testing.T) {
	b := []byte(tricky)
	forms := []string{
		tricky,
		base64.StdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		url.QueryEscape(tricky),
		url.PathEscape(tricky),
	}
	for i := range forms {
		for j := range i {
			if forms[i] == forms[j] {
				t.Errorf("forms %d and %d are both %q", j, i, forms[i])
			}
		}
	}
	if base64.StdEncoding.EncodeToString(b) == base64.RawStdEncoding.EncodeToString(b) {
		t.Error("the test value needs padding")
	}
}

// A value inside a larger base64 blob: HTTP Basic credentials, where the
// password follows "user:" at any offset within a base64 group.
func TestMaskBase64AtAnyOffset(t *testing.T) {
	const secret = "correct-horse-battery"
	for _, user := range []string{"al", "bob", "carl"} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			blob := enc.EncodeToString([]byte(user + ":" + secret + "!"))
			got := string(maskAll(t, []string{secret}, []byte("Authorization: Basic "+blob+"\n")))
			rest, ok := strings.CutPrefix(got, "Authorization: Basic ")
			before, after, found := strings.Cut(rest, Mask)
			if !ok || !found {
				t.Fatalf("user %q: got %q, want the credential masked", user, got)
			}
			// Only the characters that mix the password with its neighbours
			// may remain.
			if maxBefore := (len(user)+1)*4/3 + 1; len(before) > maxBefore {
				t.Errorf("user %q: %d characters left before the mask in %q", user, len(before), got)
			}
			if len(strings.TrimSuffix(after, "\n")) > 4 {
				t.Errorf("user %q: %q left after the mask", user, after)
			}
		}
	}
}

func TestMaskPositions(t *testing.T) {
	const v = "tok_9f8e7d6c5b4a"
	tests := []struct {
		name, in, want string
	}{
		{"middle", "key=" + v + " ok\n", "key=" + Mask + " ok\n"},
		{"start of stream", v + " ok\n", Mask + " ok\n"},
		{"end of stream", "key=" + v, "key=" + Mask},
		{"whole stream", v, Mask},
		{"twice in a row", v + v, Mask + Mask},
		{"twice", v + "," + v + "\n", Mask + "," + Mask + "\n"},
		{"near miss", v[:len(v)-1] + "X", v[:len(v)-1] + "X"},
		{"prefix at end of stream", "key=" + v[:8], "key=" + v[:8]},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(maskAll(t, []string{v}, []byte(tt.in))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMaskOverlappingValues(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"one a prefix of the other", []string{"abcdefgh", "abcdefghijkl"},
			"[abcdefghijkl] [abcdefgh]", "[" + Mask + "] [" + Mask + "]"},
		{"prefix given first or last", []string{"abcdefghijkl", "abcdefgh"},
			"[abcdefghijkl] [abcdefghij]", "[" + Mask + "] [" + Mask + "ij]"},
		{"one inside the other", []string{"SECRET-TOKEN", "xxSECRET-TOKENyy"},
			"<xxSECRET-TOKENyy> <SECRET-TOKEN>", "<" + Mask + "> <" + Mask + ">"},
		{"one a suffix of the other", []string{"12345678", "abcd12345678"},
			"=abcd12345678=", "=" + Mask + "="},
		{"overlapping ends", []string{"abcdefgh", "efghijkl"},
			"(abcdefghijkl)", "(" + Mask + ")"},
		{"chain of overlaps", []string{"aaaabbbb", "bbbbcccc", "ccccdddd"},
			"(aaaabbbbccccdddd)", "(" + Mask + ")"},
		{"self-overlapping", []string{"abababab"},
			"(abababababab)", "(" + Mask + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(maskAll(t, tt.values, []byte(tt.in)))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			for _, v := range tt.values {
				if f := fragment(got, v); f != "" {
					t.Errorf("fragment %q of value %q leaked in %q", f, v, got)
				}
			}
		})
	}
}

// fragment returns a substring of v of MinLen or more bytes that appears in
// out, if there is one.
func fragment(out, v string) string {
	for i := 0; i+MinLen <= len(v); i++ {
		if f := v[i : i+MinLen]; strings.Contains(out, f) {
			return f
		}
	}
	return ""
}

// splitCases are inputs whose output must not depend on how they are split
// into writes.
var splitCases = []struct {
	name   string
	values []string
	in     string
}{
	{"value in text", []string{"s3cr3t-v4lue"}, "the key is s3cr3t-v4lue, ok\n"},
	{"value at both ends", []string{"s3cr3t-v4lue"}, "s3cr3t-v4lue and s3cr3t-v4lue"},
	{"base64 and json", []string{tricky}, "b64=" + base64.StdEncoding.EncodeToString([]byte(tricky)) +
		" json=\"" + JSONBody(tricky, true) + "\"\n"},
	{"overlapping values", []string{"abcdefgh", "abcdefghijkl", "ghijklmn"}, "-abcdefghijklmn-abcdefgh-abcdefg-"},
	{"near misses", []string{"abcdefgh"}, "abcdefgXabcdefgabcdefgh"},
	{"no value", []string{"abcdefgh"}, "nothing to see here, abc abcd abcdefg"},
}

func TestMaskSplitAtEveryPosition(t *testing.T) {
	for _, tc := range splitCases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			pats, _ := patterns(tc.values)
			want := reference(in, pats)
			if whole := maskAll(t, tc.values, in); !bytes.Equal(whole, want) {
				t.Fatalf("in one write: got %q, want %q", whole, want)
			}
			for i := 0; i <= len(in); i++ {
				if got := maskAll(t, tc.values, in[:i], in[i:]); !bytes.Equal(got, want) {
					t.Errorf("split at %d: got %q, want %q", i, got, want)
				}
			}
			for i := 0; i <= len(in); i++ {
				for j := i; j <= len(in); j += 3 {
					if got := maskAll(t, tc.values, in[:i], in[i:j], in[j:]); !bytes.Equal(got, want) {
						t.Errorf("split at %d and %d: got %q, want %q", i, j, got, want)
					}
				}
			}
			var single [][]byte
			for i := range in {
				single = append(single, in[i:i+1])
			}
			if got := maskAll(t, tc.values, single...); !bytes.Equal(got, want) {
				t.Errorf("one byte per write: got %q, want %q", got, want)
			}
		})
	}
}

// randomSecret returns a token-like value: letters, digits and a little
// punctuation.
func randomSecret(r *rand.Rand, n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

// Random text with random values and their forms in it, written in random
// pieces, must come out as the slow reference says.
func TestMaskMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var values []string
		for range 1 + r.IntN(8) {
			values = append(values, randomSecret(r, 4+r.IntN(20)))
		}
		if r.IntN(4) == 0 { // make some share a prefix
			values = append(values, values[0]+randomSecret(r, 1+r.IntN(6)))
		}
		pats, _ := patterns(values)
		var in []byte
		for range 60 {
			switch r.IntN(3) {
			case 0:
				in = append(in, pats[r.IntN(len(pats))]...)
			case 1:
				p := pats[r.IntN(len(pats))]
				in = append(in, p[:r.IntN(len(p))]...) // a near miss
			default:
				in = append(in, randomSecret(r, r.IntN(30))...)
			}
		}
		// Small and large writes: a write longer than the longest form is
		// scanned in place, a shorter one is added to what is held.
		var chunks [][]byte
		maxChunk := []int{8, 64, 512}[round%3]
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(maxChunk))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		got := maskAll(t, values, chunks...)
		if want := reference(in, pats); !bytes.Equal(got, want) {
			t.Fatalf("round %d: got\n%q\nwant\n%q", round, got, want)
		}
		for _, v := range values {
			if bytes.Contains(got, []byte(v)) {
				t.Fatalf("round %d: value %d in output %q", round, slices.Index(values, v), got)
			}
		}
	}
}

func TestBinaryWithoutValuesPassesUnchanged(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := make([]byte, 1<<20)
	for i := range in {
		in[i] = byte(r.Uint32())
	}
	var values []string
	for range 100 {
		values = append(values, randomSecret(r, 16+r.IntN(49)))
	}
	pats, _ := patterns(values)
	for _, p := range pats {
		if bytes.Contains(in, []byte(p)) {
			t.Fatal("the random input happens to contain a value; change the seed")
		}
	}
	var chunks [][]byte
	for rest := in; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(64<<10))
		chunks = append(chunks, rest[:n])
		rest = rest[n:]
	}
	if got := maskAll(t, values, chunks...); !bytes.Equal(got, in) {
		t.Errorf("binary input changed: %d bytes in, %d out", len(in), len(got))
	}
}

func TestShortValuesAreSkippedAndReported(t *testing.T) {
	values := []string{"abc", "", "long-enough", "xy", "abcd"}
	var out bytes.Buffer
	w := New(&out, values, noIdle)
	if got, want := w.Skipped(), []int{0, 3}; !slices.Equal(got, want) {
		t.Errorf("Skipped() = %v, want %v", got, want)
	}
	w.Write([]byte("abc xy long-enough abcd\n"))
	w.Close()
	if got, want := out.String(), "abc xy "+Mask+" "+Mask+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNothingToMaskPassesThrough(t *testing.T) {
	for _, values := range [][]string{nil, {"", "abc"}} {
		var out bytes.Buffer
		w := New(&out, values, Options{})
		w.Write([]byte("abc "))
		// Written at once: nothing is held when there is nothing to mask.
		if got := out.String(); got != "abc " {
			t.Errorf("values %d: got %q before Close", len(values), got)
		}
		w.Close()
	}
}

// Text that cannot begin a value is written through at once, without
// waiting for Close or the idle flush.
func TestOutputIsNotHeldBack(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, []string{"s3cr3t-v4lue"}, noIdle)
	steps := []struct{ write, want string }{
		{"hello\n", "hello\n"},
		{"token: s3c", "hello\ntoken: "},
		{"r3t-v4l", "hello\ntoken: "},
		{"ue and s3cr3t-x", "hello\ntoken: " + Mask + " and s3cr3t-x"},
		{"s", "hello\ntoken: " + Mask + " and s3cr3t-x"},
		{"!", "hello\ntoken: " + Mask + " and s3cr3t-xs!"},
	}
	for _, s := range steps {
		w.Write([]byte(s.write))
		if got := out.String(); got != s.want {
			t.Fatalf("after writing %q: got %q, want %q", s.write, got, s.want)
		}
	}
}

// lockedBuffer is written by the idle timer's goroutine and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestIdleFlushShowsPrompt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		w := New(&out, []string{"passphrase-0451"}, Options{})
		defer w.Close()
		at := func(d time.Duration, want string) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := out.String(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		// "pass" could begin the value, so it waits.
		w.Write([]byte("Type the pass"))
		at(0, "Type the ")
		at(DefaultIdleFlush-time.Millisecond, "Type the ")
		at(time.Millisecond, "Type the pass")

		// A write restarts the idle time.
		w.Write([]byte("word: p"))
		at(DefaultIdleFlush*3/4, "Type the password: ")
		w.Write([]byte("a"))
		at(DefaultIdleFlush*3/4, "Type the password: ")
		at(DefaultIdleFlush/4, "Type the password: pa")

		// A value completed after the pause is masked from there on.
		w.Write([]byte("ssphrase-0451\n"))
		at(0, "Type the password: pa"+Mask+"\n")
	})
}

func TestIdleFlushConfigurable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		w := New(&out, []string{"passphrase-0451"}, Options{IdleFlush: time.Second})
		defer w.Close()
		w.Write([]byte("> pass"))
		time.Sleep(time.Second - time.Millisecond)
		synctest.Wait()
		if got := out.String(); got != "> " {
			t.Fatalf("before the idle time: got %q", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := out.String(); got != "> pass" {
			t.Fatalf("after the idle time: got %q", got)
		}
	})
}

func TestCloseFlushesHeldBytes(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, []string{"s3cr3t-v4lue"}, noIdle)
	w.Write([]byte("x=s3cr3t"))
	if got := out.String(); got != "x=" {
		t.Fatalf("before Close: got %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "x=s3cr3t" {
		t.Errorf("after Close: got %q", got)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("broken pipe")
}

func TestDestinationErrorIsReturned(t *testing.T) {
	dst := &failingWriter{}
	w := New(dst, []string{"s3cr3t-v4lue"}, noIdle)
	if _, err := w.Write([]byte("hello\n")); err == nil {
		t.Fatal("Write succeeded on a failing destination")
	}
	if _, err := w.Write([]byte("again\n")); err == nil {
		t.Fatal("second Write succeeded on a failing destination")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close succeeded on a failing destination")
	}
	if dst.n != 1 {
		t.Errorf("destination written %d times after failing, want 1", dst.n)
	}
}

// Errors and the Writer itself must not reveal a value when printed.
func TestNothingRevealsValues(t *testing.T) {
	const v = "s3cr3t-v4lue"
	held := New(io.Discard, []string{v, "abc"}, noIdle)
	held.Write([]byte(v[:len(v)-1]))
	w := New(&failingWriter{}, []string{v, "abc"}, noIdle)
	_, err := w.Write([]byte(v))
	for _, s := range []string{
		err.Error(),
		fmt.Sprint(w.Skipped()),
		fmt.Sprintf("%v %+v %#v %s", held, held, held, held),
	} {
		if strings.Contains(s, v) || strings.Contains(s, "abc") {
			t.Errorf("%q reveals a value", s)
		}
	}
}

// A value that overlaps itself, repeated without end, must not hold back the
// output for ever.
func TestRepeatedSelfOverlapIsNotHeldForever(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, []string{"abababab"}, noIdle)
	chunk := []byte(strings.Repeat("ab", 1024))
	for range 2 * maxOpenSpan / len(chunk) {
		w.Write(chunk)
	}
	if out.Len() == 0 {
		t.Fatal("nothing written")
	}
	if strings.Trim(out.String(), "*") != "" {
		t.Errorf("got %q, want only masks", out.String())
	}
	if len(w.buf) > maxOpenSpan+len(chunk) {
		t.Errorf("holding %d bytes", len(w.buf))
	}
	w.Close()
	if strings.Trim(out.String(), "*") != "" {
		t.Errorf("got %q, want only masks", out.String())
	}
}

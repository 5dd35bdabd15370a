package dotenv

import (
	"errors"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/joho/godotenv"
)

// godotenv is the reference: Parse must read every text as it does.
func matchesGodotenv(t *testing.T, text string) {
	t.Helper()
	want, wantErr := godotenv.UnmarshalBytes([]byte(text))
	got, err := Parse([]byte(text))
	if wantErr != nil {
		if kind := godotenvErrorKind(wantErr); !errors.Is(err, kind) {
			t.Fatalf("Parse(%q): error %v, godotenv: %v", text, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("Parse(%q): %v, godotenv reads %q", text, err, want)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("Parse(%q) = %q, godotenv reads %q", text, got, want)
	}
}

func godotenvErrorKind(err error) error {
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "unterminated quoted value"):
		return ErrUnterminatedQuote
	case strings.HasPrefix(msg, "unexpected character"):
		return ErrUnexpectedCharacter
	case strings.HasPrefix(msg, "zero length string"):
		return ErrNoName
	}
	return err
}

// tricky are texts where a parser could easily read otherwise; they are
// also the seeds of FuzzMatchesGodotenv.
var tricky = []string{
	"",
	"\n\n",
	"A=1",
	"A=1\n",
	"A=1\r\nB=2\r\n",
	"A=1\rB=2",
	"A=1\r",
	"A=\"x\r\ny\"",
	"export A=1",
	"export\tA=1",
	"export  A = 1 ",
	"exportA=1",
	"export",
	"export ",
	"export \t",
	"export\nA=1",
	"export=1",
	"export: 1",
	"export \xc2\xa0A=1",
	"export\xc2\x85A=1",
	"export \x85",
	"A: value",
	"A:value",
	"A:B=C",
	"A = spaced value  ",
	"A B=1",
	"A.B=1",
	"1A=1",
	"_A=1",
	"=value",
	"=",
	":",
	"A",
	"A\n",
	"A B",
	"A=1\nB",
	"\xe9T\xe9=1",
	"\xc3\xa9=1",
	"A\xc2\xa0=1",
	"A\xa0=1",
	"A\xb2=1",
	"A-B=1",
	"A/B=1",
	"A\"=1",
	"'A'=1",
	"A=\xff\xfe",
	"A=\"\xff\"",
	"A='\xff'",
	"A=x\xff #c",
	"# comment\nA=1",
	"   # indented comment\nA=1",
	"#",
	"# only a comment",
	"A=1 # comment",
	"A=1# not a comment",
	"A=1 #a #b",
	"A=1\t#tab comment",
	"A=1\xc2\xa0#nbsp comment",
	"A= # starts with hash",
	"A=#hash",
	"A=\"x\" # comment",
	"A=\"x\"# comment",
	"A=\"x\" B=2",
	"A=\"x\"junk",
	"A=\"x\"junk\n",
	"A='x' B=2",
	"A=''",
	"A=\"\"",
	"A=\"\"\"",
	"A='''",
	"A=\"",
	"A='",
	"A=\"unterminated\nB=2",
	"A=\"multi\nline\nvalue\"",
	"A='multi\nline'",
	"A=\"esc \\n \\r \\t \\\\ \\\" \\' \\$ \\a\"",
	"A=\"a\\\\\"",
	"A=\"a\\\"\"",
	"A=\"a\\\"\"b\"",
	"A=\"\\\\n\"",
	"A=\"\\\\\\n\"",
	"A=\"\\\n\"",
	"A=\"x\\\"",
	"A=\"\\\"",
	"A=\"\\\"\\\"\"",
	"A='it\\'s'",
	"A='\\n'",
	"A=\\n \\$B",
	"A=\"\\\xc3\xa9\"",
	"A=\"\\\xff\"",
	"A=\"\\\r\"",
	"A=1\nB=$A",
	"A=1\nB=${A}",
	"A=1\nB=\"$A\"",
	"A=1\nB=\"${A}x\"",
	"A=1\nB='$A'",
	"A=1\nB=$Ax",
	"A=1\nB=$AB",
	"A=1\nB=${A",
	"A=1\nB=$A}",
	"A=1\nB=$(A)",
	"A=1\nB=$({A})",
	"A=1\nB=${(A)}",
	"A=1\nB=\\$A",
	"A=1\nB=\"\\$A\"",
	"A=1\nB=\"\\\\$A\"",
	"A=1\nB=\\\\$A",
	"a=1\nB=$a",
	"B=$",
	"B=${}",
	"B=$(",
	"B=${",
	"B=$$",
	"B=\"$\"",
	"B=$UNDEFINED",
	"B=$HOME",
	"A=1\nA=$A$A",
	"A=$A",
	"A=1\nA=2",
	"A=1\nA=",
	"A=\nB=2",
	"A=\n",
	"A=   \n",
	"A= 'x'",
	"A=  \"x\"",
	"A==1",
	"A=1=2",
	"A =\t\"x\"",
	"K=\"$A ${B} \\${C}\"\nA=1",
	"\v\fA=1",
	"\xc2\x85A=1",
	"\xe2\x80\x83A=1",
	"\xe2\x80\x83",
	"A=x \xe2\x80\x83#c",
	"A=\xc2\xa0x\xc2\xa0",
	"A=x\xc2\x85",
	"A=x \r#c",
}

func TestTrickyTexts(t *testing.T) {
	for _, text := range tricky {
		matchesGodotenv(t, text)
	}
}

// What users write in .env files reads as they mean it.
func TestCommonFile(t *testing.T) {
	got, err := Parse([]byte(`# the app's settings
export DB_USER=app
DB_PASSWORD='single $quoted'
DB_URL="postgres://${DB_USER}@db/app?sslmode=require"   # where
EMPTY=
CERT="-----BEGIN CERT-----
line two
-----END CERT-----"
ESCAPED="a\nb \$NOT_EXPANDED"
YAML_STYLE: plain value
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"DB_USER":     "app",
		"DB_PASSWORD": "single $quoted",
		"DB_URL":      "postgres://app@db/app?sslmode=require",
		"EMPTY":       "",
		"CERT":        "-----BEGIN CERT-----\nline two\n-----END CERT-----",
		"ESCAPED":     "a\nb $NOT_EXPANDED",
		"YAML_STYLE":  "plain value",
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A reference reads only the text: never the process environment.
func TestReferencesIgnoreEnvironment(t *testing.T) {
	t.Setenv("DOTENV_TEST_FROM_PROCESS", "leaked")
	got, err := Parse([]byte("A=$DOTENV_TEST_FROM_PROCESS\nB=\"${DOTENV_TEST_FROM_PROCESS}\""))
	if err != nil {
		t.Fatal(err)
	}
	if got["A"] != "" || got["B"] != "" {
		t.Errorf("references read the environment: %q", got)
	}
}

// The errors never hold the text, which is secret.
func TestErrorsHoldNoText(t *testing.T) {
	for text, want := range map[string]error{
		"A=\"s3cr3t":  ErrUnterminatedQuote,
		"A='s3cr3t":   ErrUnterminatedQuote,
		"s3cr3t\nA=1": ErrUnexpectedCharacter,
		"s3-cr3t=1":   ErrUnexpectedCharacter,
		"export ":     ErrNoName,
	} {
		_, err := Parse([]byte(text))
		if err != want {
			t.Errorf("Parse(%q): %v, want %v", text, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "cr3t") {
			t.Errorf("Parse(%q): the error quotes the text: %v", text, err)
		}
	}
}

// alphabet holds every byte the parser treats apart, and some it does not.
const alphabet = "A=\"'\\# ${}\nex:"

// Every text of up to exhaustiveLength bytes of the alphabet.
func TestAllShortTexts(t *testing.T) {
	maxLength := 5
	if testing.Short() {
		maxLength = 4
	}
	buf := make([]byte, 0, maxLength)
	var walk func()
	walk = func() {
		matchesGodotenv(t, string(buf))
		if len(buf) == maxLength {
			return
		}
		for i := range len(alphabet) {
			buf = append(buf, alphabet[i])
			walk()
			buf = buf[:len(buf)-1]
		}
	}
	walk()
}

// Longer random texts of words a dotenv text is made of.
func TestRandomTexts(t *testing.T) {
	words := []string{
		"A", "B", "AB", "a", "=", ":", "\"", "'", "\\", "#", " ", "\t", "$", "{", "}", "(", ")",
		"\n", "\r\n", "\r", "export", "export ", "$A", "${B}", "\\n", "\\$", ".", "_", "1",
		"\xc2\xa0", "\xff", "\xc3\xa9", "A=", "B=", "\nA=", " #",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range 100_000 {
		b.Reset()
		for range rng.IntN(16) {
			b.WriteString(words[rng.IntN(len(words))])
		}
		matchesGodotenv(t, b.String())
	}
}

func FuzzMatchesGodotenv(f *testing.F) {
	for _, text := range tricky {
		f.Add(text)
	}
	f.Fuzz(matchesGodotenv)
}

// Package dotenv reads KEY=value text exactly as godotenv.UnmarshalBytes of
// github.com/joho/godotenv v1.5.1 does, so that files and program outputs
// written for that parser keep their meaning, without compiling its six
// regular expressions at every start of secretrun.
//
// Its quirks are kept on purpose, since a value that changed meaning would
// be a wrong secret handed to a program: an inline comment is cut at the
// last " #" of an unquoted value, not the first; an unquoted value that
// starts with # is not a comment; a quote preceded by a backslash never
// closes a value, even after an escaped backslash; `$(NAME)` expands NAME
// and keeps the ")"; `\\$NAME` gives a literal "$NAME"; text after a closing
// quote starts another statement. References ($NAME, ${NAME}) see only keys
// defined earlier in the same text, never the process environment.
package dotenv

import (
	"bytes"
	"errors"
	"strings"
	"unicode"
)

// The errors of Parse say what kind of problem the text has, never where
// or with what text around it: the text holds secrets.
var (
	ErrUnterminatedQuote   = errors.New("a quoted value is not terminated")
	ErrUnexpectedCharacter = errors.New("a line does not start with a variable name and =")
	ErrNoName              = errors.New("a line has no variable name")
)

// Parse reads src into its variables, a later definition of a name
// replacing an earlier one. A name may be empty (a line "=value", or a last
// line without =), or hold characters an environment variable name cannot
// (., spaces, Latin-1 letters): callers decide what to accept.
func Parse(src []byte) (map[string]string, error) {
	vars := make(map[string]string)
	rest := bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	for {
		if rest = statementStart(rest); rest == nil {
			return vars, nil
		}
		key, afterKey, err := keyName(rest)
		if err != nil {
			return nil, err
		}
		value, afterValue, err := readValue(afterKey, vars)
		if err != nil {
			return nil, err
		}
		vars[key] = value
		rest = afterValue
	}
}

// statementStart skips white space and full-line comments; nil is the end
// of the text.
func statementStart(src []byte) []byte {
	for {
		i := bytes.IndexFunc(src, func(r rune) bool { return !unicode.IsSpace(r) })
		if i < 0 {
			return nil
		}
		src = src[i:]
		if src[0] != '#' {
			return src
		}
		i = bytes.IndexByte(src, '\n')
		if i < 0 {
			return nil
		}
		src = src[i:]
	}
}

// keyName reads a name up to its = or :, after an optional "export ".
func keyName(src []byte) (key string, rest []byte, err error) {
	if t, ok := bytes.CutPrefix(src, []byte("export")); ok && bytes.IndexFunc(t, isSpace) == 0 {
		src = bytes.TrimLeftFunc(t, isSpace)
	}
	for i, b := range src {
		// godotenv tests each byte as the rune of that number, so the
		// bytes of a UTF-8 sequence pass as Latin-1 letters or spaces.
		r := rune(b)
		switch {
		case b == '=', b == ':':
			return strings.TrimRightFunc(string(src[:i]), unicode.IsSpace), bytes.TrimLeftFunc(src[i+1:], isSpace), nil
		case isSpace(r), b == '_', b == '.', unicode.IsLetter(r), unicode.IsNumber(r):
		default:
			return "", nil, ErrUnexpectedCharacter
		}
	}
	if len(src) == 0 {
		return "", nil, ErrNoName
	}
	// A last line of name characters without = is a value of no name.
	return "", bytes.TrimLeftFunc(src, isSpace), nil
}

// readValue reads the value that starts src and returns the text after it.
func readValue(src []byte, vars map[string]string) (value string, rest []byte, err error) {
	if len(src) == 0 {
		return "", nil, nil
	}
	if quote := src[0]; quote == '"' || quote == '\'' {
		for i := 1; i < len(src); i++ {
			if src[i] != quote || src[i-1] == '\\' {
				continue
			}
			value := string(bytes.TrimLeft(bytes.TrimRight(src[:i], string(quote)), string(quote)))
			if quote == '"' {
				value = expandReferences(unescape(value), vars)
			}
			return value, src[i+1:], nil
		}
		return "", nil, ErrUnterminatedQuote
	}

	end := bytes.IndexAny(src, "\n\r")
	if end < 0 {
		end = len(src)
	}
	// Decoding to runes, as godotenv does, turns each byte that is not
	// UTF-8 into U+FFFD.
	line := []rune(string(src[:end]))
	endOfValue := len(line)
	for i := len(line) - 1; i > 0; i-- {
		if line[i] == '#' && isSpace(line[i-1]) {
			endOfValue = i
			break
		}
	}
	value = strings.TrimFunc(string(line[:endOfValue]), isSpace)
	return expandReferences(value, vars), src[end:], nil
}

// unescape reads the escapes of a double-quoted value: \n and \r are a
// newline and a carriage return, \$ stays for expandReferences, and a
// backslash before any other character (a newline too) stands for that
// character.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case '$':
			b.WriteString(`\$`)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// expandReferences replaces $NAME, ${NAME} and $(NAME by the value of NAME
// (upper-case letters, digits and _) defined earlier, or by nothing; a
// following } is dropped, a following ) is not. \$ is a literal $, and a $
// not followed by a name stays as written.
func expandReferences(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i += 2
		case s[i] == '$':
			j := i + 1
			if j < len(s) && s[j] == '(' {
				j++
			}
			if j < len(s) && s[j] == '{' {
				j++
			}
			start := j
			for j < len(s) && isNameByte(s[j]) {
				j++
			}
			name := s[start:j]
			if j < len(s) && s[j] == '}' {
				j++
			}
			if name == "" {
				b.WriteString(s[i:j])
			} else {
				b.WriteString(vars[name])
			}
			i = j
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// isSpace is godotenv's white space within a line: the Latin-1 white space
// of unicode.IsSpace but the newline.
func isSpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', '\r', ' ', 0x85, 0xA0:
		return true
	}
	return false
}

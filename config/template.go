package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/secretrun/secretrun/providers"
)

// Template is one entry of `files:`: a memory-only file rendered with Go's
// text/template from the variables of the environment being run, after
// every fetch.
type Template struct {
	name string
	pos  string
	tmpl *template.Template
	// text is where the template's text is written, to name the file,
	// line and column of an error in it.
	text textPositions
	file string
}

// Name is the variable that holds the file's path.
func (t *Template) Name() string { return t.name }

// Pos is where the entry is written: "secretrun.yaml:20:3".
func (t *Template) Pos() string { return t.pos }

// Render renders the file from vars, the environment's variables by name.
// A variable the template uses but vars lacks is an error, never an empty
// string. The error names the file, line and column in the config and
// never holds a value.
func (t *Template) Render(vars map[string]string) (providers.Secret, error) {
	var out bytes.Buffer
	if err := t.tmpl.Execute(&out, vars); err != nil {
		return providers.Secret{}, t.execError(err, vars)
	}
	return providers.NewSecret(out.String()), nil
}

// templateFuncs are the helpers templates may call beside text/template's
// own. Their errors never quote their input: it is a secret.
var templateFuncs = template.FuncMap{
	"base64decode": func(s string) (string, error) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(strings.TrimSpace(s)); err == nil {
				return string(b), nil
			}
		}
		return "", errors.New("the value is not base64")
	},
	"base64encode": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	// json "a.b.0" VALUE reads one field of a JSON value: a string as it
	// is, anything else as JSON.
	"json": func(path, s string) (string, error) {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return "", errors.New("the value is not JSON")
		}
		for _, key := range strings.Split(path, ".") {
			if key == "" {
				continue
			}
			switch x := v.(type) {
			case map[string]any:
				next, ok := x[key]
				if !ok {
					return "", fmt.Errorf("the JSON value has no field %q", key)
				}
				v = next
			case []any:
				i, err := strconv.Atoi(key)
				if err != nil || i < 0 || i >= len(x) {
					return "", fmt.Errorf("the JSON value is a list of %d; %q is no index of it", len(x), key)
				}
				v = x[i]
			default:
				return "", fmt.Errorf("the JSON value has no field %q: it is not an object", key)
			}
		}
		if str, ok := v.(string); ok {
			return str, nil
		}
		b, err := json.Marshal(v)
		return string(b), err
	},
	// default FALLBACK VALUE is VALUE, or FALLBACK when VALUE is empty.
	"default": func(fallback, value string) string {
		if value == "" {
			return fallback
		}
		return value
	},
}

// parseTemplates reads `files:`, parsing every template, so a template
// that does not parse is an error of the config, whatever the command.
func (d *document) parseTemplates() ([]*Template, error) {
	if d.files == nil || isNull(d.files) {
		return nil, nil
	}
	m, ok := d.files.(*ast.MappingNode)
	if !ok {
		return nil, errorAt(d.file, d.files, "files", "must be a mapping of variable names to files, such as PGPASSFILE: {template: \"...\"}")
	}
	var out []*Template
	for _, kv := range m.Values {
		name := kv.Key.String()
		path := "files." + name
		if !ValidName(name) {
			return nil, errorAt(d.file, kv.Key, "files", "%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		}
		entry, ok := kv.Value.(*ast.MappingNode)
		if !ok {
			return nil, errorAt(d.file, kv.Value, path, "must be a mapping with template: \"...\"")
		}
		var shape struct {
			Template string `yaml:"template"`
		}
		if err := decodeStrict(d.file, path, entry, &shape); err != nil {
			return nil, err
		}
		textNode := valueOf(entry, "template", nil)
		if textNode == nil {
			return nil, errorAt(d.file, kv.Key, path, "missing template: the file's contents, such as \"{{ .DB_PASSWORD }}\"")
		}
		t := &Template{name: name, pos: position(d.file, kv.Key), file: d.file, text: locateText(d.src, textNode, shape.Template)}
		parsed, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(shape.Template)
		if err != nil {
			return nil, t.parseError(err)
		}
		t.tmpl = parsed
		out = append(out, t)
	}
	return out, nil
}

// templateError is text/template's error: `template: NAME:LINE:COL: ...`,
// the column only when executing.
// Both are compiled on the first failed template only, not on every start.
var templateError = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: (.*)$`)
})

// executing is how text/template starts an execution error's message.
var executing = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^executing "[^"]*" at <(.*?)>: (.*)$`)
})

func (t *Template) parseError(err error) *Error {
	line, col, msg := t.split(err)
	return &Error{Pos: t.at(line, col), Path: "files." + t.name + ".template", Msg: msg}
}

func (t *Template) execError(err error, vars map[string]string) *Error {
	line, col, msg := t.split(err)
	if m := executing().FindStringSubmatch(msg); m != nil {
		action, reason := "{{ "+m[1]+" }}", m[2]
		if written, ok := t.text.action(line, col); ok {
			action = written
		}
		if missing, ok := strings.CutPrefix(reason, "map has no entry for key "); ok {
			names := make([]string, 0, len(vars))
			for n := range vars {
				names = append(names, n)
			}
			sort.Strings(names)
			defined := strings.Join(names, ", ")
			if defined == "" {
				defined = "none"
			}
			reason = fmt.Sprintf("no variable %s in this environment (defined: %s)", strings.Trim(missing, `"`), defined)
		}
		msg = action + ": " + reason
	}
	for _, v := range vars {
		// text/template's messages name types and fields, not values; this
		// keeps it so should one ever quote its input.
		if len(v) >= 6 && strings.Contains(msg, v) {
			msg = "the template failed to render; its error would show a value"
			break
		}
	}
	return &Error{Pos: t.at(line, col), Path: "files." + t.name + ".template", Msg: msg}
}

// split takes the template's line and column (0-based, -1 when the error
// gives none) out of a text/template error.
func (t *Template) split(err error) (line, col int, msg string) {
	m := templateError().FindStringSubmatch(err.Error())
	if m == nil {
		return 1, -1, err.Error()
	}
	line, _ = strconv.Atoi(m[1])
	col = -1
	if m[2] != "" {
		col, _ = strconv.Atoi(m[2])
	}
	return line, col, m[3]
}

// at is the config position of the template's line (1-based) and byte
// column (0-based, -1 for the line's start).
func (t *Template) at(line, col int) string {
	l, c := t.text.locate(line, col)
	return fmt.Sprintf("%s:%d:%d", t.file, l, c)
}

// textPositions maps each byte of a YAML string's value to the line and
// column in the file where it is written.
type textPositions struct {
	value string
	// lines and cols hold, per byte of value (and one past its end), the
	// file line and column; nil when the value's text could not be traced
	// back byte by byte, and start stands for every position.
	lines, cols []int
	start       [2]int
}

// locate is the file position of the value's line (1-based) and byte
// column within it (0-based; -1 for the start of the line).
func (p textPositions) locate(line, col int) (int, int) {
	if p.lines == nil {
		return p.start[0], p.start[1]
	}
	off := p.offset(line, col)
	return p.lines[off], p.cols[off]
}

// offset is the byte offset in the value of a line and column.
func (p textPositions) offset(line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(p.value[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	if col > 0 {
		off += col
	}
	return min(off, len(p.value))
}

// action is the action {{ ... }} around the value's line (1-based) and
// byte column (0-based), as it is written.
func (p textPositions) action(line, col int) (string, bool) {
	off := p.offset(line, col)
	open := strings.LastIndex(p.value[:off], "{{")
	end := strings.Index(p.value[off:], "}}")
	if open < 0 || end < 0 || strings.Contains(p.value[open+2:off], "}}") {
		return "", false
	}
	return p.value[open : off+end+2], true
}

// locateText traces a string node's value back to where its characters
// are written: exactly for plain, quoted and literal (|) scalars, whose
// text it re-reads from src; for anything else (folded >), every position
// is the value's start.
func locateText(src []byte, n ast.Node, value string) textPositions {
	p := textPositions{value: value}
	tk := n.GetToken()
	if tk == nil {
		return p
	}
	p.start = [2]int{tk.Position.Line, tk.Position.Column}
	lines := strings.Split(string(src), "\n")
	var tr tracer
	switch v := n.(type) {
	case *ast.LiteralNode:
		if !strings.HasPrefix(strings.TrimSpace(tk.Value), "|") {
			return p
		}
		p.start = [2]int{tk.Position.Line + 1, 1}
		tr = traceBlock(lines, tk.Position.Line)
	case *ast.StringNode:
		switch v.GetToken().Type {
		case token.DoubleQuoteType:
			tr = traceQuoted(lines, tk.Position.Line, tk.Position.Column, '"')
		case token.SingleQuoteType:
			tr = traceQuoted(lines, tk.Position.Line, tk.Position.Column, '\'')
		default:
			tr = tracePlain(lines, tk.Position.Line, tk.Position.Column, value)
		}
	default:
		return p
	}
	// Only a trace that reads back exactly the value the parser read is
	// trusted; a literal block's trailing newlines depend on its chomping.
	got := tr.text.String()
	if got != value && strings.TrimRight(got, "\n") != strings.TrimRight(value, "\n") {
		return p
	}
	for len(tr.lines) <= len(value) {
		tr.lines = append(tr.lines, tr.endLine)
		tr.cols = append(tr.cols, tr.endCol)
	}
	p.lines, p.cols = tr.lines[:len(value)+1], tr.cols[:len(value)+1]
	return p
}

// tracer collects a value's bytes with the position of each.
type tracer struct {
	text            strings.Builder
	lines, cols     []int
	endLine, endCol int
}

func (t *tracer) add(s string, line, col int) {
	t.text.WriteString(s)
	for range len(s) {
		t.lines = append(t.lines, line)
		t.cols = append(t.cols, col)
	}
}

// byteCol is the byte offset in s of the 1-based column col, which the
// parser counts in characters.
func byteCol(s string, col int) int {
	off := 0
	for i := 1; i < col && off < len(s); i++ {
		_, size := utf8.DecodeRuneInString(s[off:])
		off += size
	}
	return off
}

func tracePlain(lines []string, line, col int, value string) tracer {
	var t tracer
	if line < 1 || line > len(lines) {
		return t
	}
	text := lines[line-1][byteCol(lines[line-1], col):]
	if !strings.HasPrefix(text, value) {
		return t
	}
	c := col
	for _, r := range value {
		t.add(string(r), line, c)
		c++
	}
	t.endLine, t.endCol = line, c
	return t
}

// traceQuoted reads a quoted scalar from its opening quote, decoding
// escapes (double quotes) or doubled quotes (single quotes) and folding
// line breaks as YAML does.
func traceQuoted(lines []string, line, col int, quote byte) tracer {
	var t tracer
	if line < 1 || line > len(lines) {
		return t
	}
	l := line
	s := lines[l-1]
	i := byteCol(s, col)
	if i >= len(s) || s[i] != quote {
		return t
	}
	i++
	colAt := func(i int) int { return utf8.RuneCountInString(s[:i]) + 1 }
	for {
		if i >= len(s) {
			// A line break inside the quotes folds: to a space, or to
			// one newline per empty line that follows.
			t.trimTrailingSpace()
			newlines := 0
			for {
				l++
				if l > len(lines) {
					return tracer{}
				}
				s = lines[l-1]
				if strings.TrimSpace(s) != "" {
					break
				}
				newlines++
			}
			i = len(s) - len(strings.TrimLeft(s, " \t"))
			if newlines == 0 {
				t.add(" ", l, colAt(i))
			} else {
				t.add(strings.Repeat("\n", newlines), l, colAt(i))
			}
			continue
		}
		c := s[i]
		switch {
		case c == quote && quote == '\'' && i+1 < len(s) && s[i+1] == '\'':
			t.add("'", l, colAt(i))
			i += 2
		case c == quote:
			t.endLine, t.endCol = l, colAt(i)
			return t
		case c == '\\' && quote == '"':
			if i+1 >= len(s) {
				// An escaped line break joins the lines.
				l++
				if l > len(lines) {
					return tracer{}
				}
				s = lines[l-1]
				i = len(s) - len(strings.TrimLeft(s, " \t"))
				continue
			}
			decoded, size, ok := yamlEscape(s[i+1:])
			if !ok {
				return tracer{}
			}
			t.add(decoded, l, colAt(i))
			i += 1 + size
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			t.add(s[i:i+size], l, colAt(i))
			i += size
		}
	}
}

// trimTrailingSpace drops the spaces a folded line break removes.
func (t *tracer) trimTrailingSpace() {
	s := t.text.String()
	trimmed := strings.TrimRight(s, " \t")
	if len(trimmed) == len(s) {
		return
	}
	t.text.Reset()
	t.text.WriteString(trimmed)
	t.lines, t.cols = t.lines[:len(trimmed)], t.cols[:len(trimmed)]
}

// yamlEscape decodes the double-quoted escape that s starts with (after
// the backslash): the text and how many bytes of s it took.
func yamlEscape(s string) (string, int, bool) {
	simple := map[byte]string{
		'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v", 'f': "\f",
		'r': "\r", 'e': "\x1b", ' ': " ", '"': `"`, '/': "/", '\\': `\`, 'N': "\u0085", '_': "\u00a0",
		'L': "\u2028", 'P': "\u2029",
	}
	if d, ok := simple[s[0]]; ok {
		return d, 1, true
	}
	width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[0]]
	if width == 0 || len(s) < 1+width {
		return "", 0, false
	}
	n, err := strconv.ParseUint(s[1:1+width], 16, 32)
	if err != nil {
		return "", 0, false
	}
	return string(rune(n)), 1 + width, true
}

// traceBlock reads a literal block scalar whose indicator (|) is on line
// indicator: the lines below it that are indented more than the key, less
// their common indentation.
func traceBlock(lines []string, indicator int) tracer {
	var t tracer
	indent := -1
	for l := indicator + 1; l <= len(lines); l++ {
		s := lines[l-1]
		if strings.TrimSpace(s) == "" {
			if indent >= 0 {
				t.add("\n", l, 1)
			}
			continue
		}
		lead := len(s) - len(strings.TrimLeft(s, " "))
		if indent < 0 {
			indent = lead
		}
		if lead < indent {
			break
		}
		c := indent + 1
		for _, r := range s[indent:] {
			t.add(string(r), l, c)
			c++
		}
		t.add("\n", l, c)
		t.endLine, t.endCol = l, c
	}
	return t
}

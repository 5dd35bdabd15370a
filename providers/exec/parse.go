package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/secretrun/secretrun/internal/dotenv"
	"github.com/secretrun/secretrun/providers"
)

// parse reads a program's stdout in a format. Its errors say what is wrong
// and where, never with the text: the output is secret.
func parse(f format, out []byte) (map[string]providers.Field, error) {
	if bytes.IndexByte(out, 0) >= 0 {
		return nil, errors.New("stdout holds a NUL byte, which an environment variable cannot")
	}
	switch f {
	case formatJSON:
		return parseJSON(out)
	case formatDotenv:
		return parseDotenv(out)
	}
	return parseRaw(out)
}

func parseRaw(out []byte) (map[string]providers.Field, error) {
	if len(out) == 0 {
		return nil, errors.New("printed nothing on stdout")
	}
	// Programs end what they print with a newline; the value does not.
	s := string(out)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	return map[string]providers.Field{providers.Plain: {Value: providers.NewSecret(s)}}, nil
}

func parseJSON(out []byte) (map[string]providers.Field, error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	var obj map[string]json.RawMessage
	err := dec.Decode(&obj)
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			return nil, errors.New("stdout is not valid JSON: more data follows the object")
		}
	}
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return nil, errors.New("printed nothing on stdout (format json wants an object)")
	case errors.As(err, &syntax):
		return nil, fmt.Errorf("stdout is not valid JSON (syntax error at byte %d)", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, errors.New("stdout is not valid JSON (it ends early)")
	case err != nil || obj == nil:
		return nil, errors.New("stdout is not a JSON object (format json wants one object of fields)")
	}
	fields := make(map[string]providers.Field, len(obj))
	for k, raw := range obj {
		switch raw[0] {
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("field %q: not a valid JSON string", k)
			}
			fields[k] = providers.Field{Value: providers.NewSecret(s)}
		case '{', '[':
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return nil, fmt.Errorf("field %q: not valid JSON", k)
			}
			fields[k] = providers.Field{Value: providers.NewSecret(buf.String()), Nested: true}
		case 'n':
			fields[k] = providers.Field{Value: providers.NewSecret("")}
		default:
			fields[k] = providers.Field{Value: providers.NewSecret(string(raw))}
		}
	}
	return fields, nil
}

func parseDotenv(out []byte) (map[string]providers.Field, error) {
	vars, err := dotenv.Parse(out)
	if err != nil {
		return nil, fmt.Errorf("stdout is not in dotenv format: %w", err)
	}
	fields := make(map[string]providers.Field, len(vars))
	for k, v := range vars {
		if k == "" {
			return nil, fmt.Errorf("stdout is not in dotenv format: %w", dotenv.ErrNoName)
		}
		fields[k] = providers.Field{Value: providers.NewSecret(v)}
	}
	return fields, nil
}

// anyValues reads out as every format that accepts it, for masking: the
// whole of it as raw, and the values of json or dotenv when it parses so.
func anyValues(out []byte) []string {
	if len(out) == 0 {
		return nil
	}
	if bytes.IndexByte(out, 0) >= 0 {
		// No format accepts it, but its parts may still be values.
		return strings.Split(string(out), "\x00")
	}
	var vs []string
	for _, f := range []format{formatRaw, formatJSON, formatDotenv} {
		fields, err := parse(f, out)
		if err != nil {
			continue
		}
		for _, field := range fields {
			vs = append(vs, field.Value.Reveal())
		}
	}
	return vs
}

package awssm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/secretrun/secretrun/providers"
)

var errNoValue = errors.New("the secret has no value at this version")

// decode turns one secret into the fields of a `secret:` source.
func decode(src *providers.Source, v *value) (map[string]providers.Field, error) {
	wantsFields := len(src.Keys) > 0 || len(src.Map) > 0
	switch {
	case v.bin != nil:
		if wantsFields {
			return nil, errors.New("the secret is binary and has no fields; name its value (base64) with `as:`")
		}
		return plain(base64.StdEncoding.EncodeToString(v.bin)), nil
	case v.str == nil:
		return nil, errNoValue
	case src.As != "":
		return plain(*v.str), nil
	case wantsFields || looksLikeObject(*v.str):
		return jsonFields(*v.str)
	}
	return plain(*v.str), nil
}

// decodeDiscovered turns one secret found by a secret_prefix into fields:
// its keys if it is a JSON object, otherwise one field named rest.
func decodeDiscovered(v *value, rest string) (map[string]providers.Field, error) {
	switch {
	case v.bin != nil:
		return map[string]providers.Field{rest: {Value: providers.NewSecret(base64.StdEncoding.EncodeToString(v.bin))}}, nil
	case v.str == nil:
		return nil, errNoValue
	case looksLikeObject(*v.str):
		return jsonFields(*v.str)
	}
	return map[string]providers.Field{rest: {Value: providers.NewSecret(*v.str)}}, nil
}

func plain(s string) map[string]providers.Field {
	return map[string]providers.Field{providers.Plain: {Value: providers.NewSecret(s)}}
}

func looksLikeObject(s string) bool {
	return strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{")
}

// jsonFields decodes a JSON object into fields. Its errors give positions,
// never the text: json's own messages quote the offending character.
func jsonFields(s string) (map[string]providers.Field, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	var obj map[string]json.RawMessage
	err := dec.Decode(&obj)
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			return nil, errors.New("the value is not valid JSON (more data follows the object); for a plain string, name it with `as:`")
		}
	}
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return nil, fmt.Errorf("the value is not valid JSON (syntax error at byte %d); for a plain string, name it with `as:`", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, errors.New("the value is not valid JSON (it ends early); for a plain string, name it with `as:`")
	case err != nil || obj == nil:
		return nil, errors.New("the value is not a JSON object, so it has no fields; for a plain string, name it with `as:`")
	}
	fields := make(map[string]providers.Field, len(obj))
	for k, raw := range obj {
		switch raw[0] {
		case '"':
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				return nil, fmt.Errorf("field %q: not a valid JSON string", k)
			}
			fields[k] = providers.Field{Value: providers.NewSecret(str)}
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

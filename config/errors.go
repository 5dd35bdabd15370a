package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Error is a problem in the config file. Its text names the file, line and
// column, the key path and, where one exists, the fix.
type Error struct {
	Pos  string // "secretrun.yaml:12:7"
	Path string // "environments.prod[1].path"
	Msg  string
	// decoding marks an error in the shape of a block (an unknown key, a
	// wrong type) rather than in a value, which may depend on ${VAR}.
	decoding bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos)
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// position renders the position of a node in file.
func position(file string, n ast.Node) string {
	// A mapping's own token is its first colon; users look for its first key.
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 {
		n = m.Values[0].Key
	}
	if n == nil || n.GetToken() == nil {
		return file
	}
	p := n.GetToken().Position
	return fmt.Sprintf("%s:%d:%d", file, p.Line, p.Column)
}

func errorAt(file string, n ast.Node, path, format string, args ...any) *Error {
	return &Error{Pos: position(file, n), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// decodeStrict decodes node into v, a pointer to a struct, rejecting unknown
// keys and wrong types. extra names keys that the caller handles itself, so
// the list of valid keys in a message is complete.
func decodeStrict(file, path string, node ast.Node, v any, extra ...string) error {
	err := decodeStrictError(file, path, node, v, extra...)
	if err != nil {
		err.decoding = true
		return err
	}
	return nil
}

func decodeStrictError(file, path string, node ast.Node, v any, extra ...string) *Error {
	err := yaml.NodeToValue(node, v, yaml.Strict())
	if err == nil {
		return nil
	}
	pos := position(file, node)
	var yerr yaml.Error
	if errors.As(err, &yerr) && yerr.GetToken() != nil {
		p := yerr.GetToken().Position
		pos = fmt.Sprintf("%s:%d:%d", file, p.Line, p.Column)
	}
	var unknown *yaml.UnknownFieldError
	if errors.As(err, &unknown) {
		key := ""
		if unknown.Token != nil {
			key = unknown.Token.Value
		}
		valid := append(yamlKeys(reflect.TypeOf(v)), extra...)
		sort.Strings(valid)
		return &Error{Pos: pos, Path: path, Msg: fmt.Sprintf("unknown key %q (valid keys: %s)", key, strings.Join(valid, ", "))}
	}
	var typeErr *yaml.TypeError
	if errors.As(err, &typeErr) {
		if typeErr.StructFieldName != nil {
			path = joinPath(path, yamlPath(reflect.TypeOf(v), *typeErr.StructFieldName))
		}
		return &Error{Pos: pos, Path: path, Msg: fmt.Sprintf("wrong type: got %s, want %s", friendlyType(typeErr.SrcType.String()), friendlyType(typeErr.DstType.String()))}
	}
	if yerr == nil {
		// The decoder passes time.ParseDuration's error on without a
		// position; find the duration that failed by its key.
		if derr := badDuration(file, path, node, reflect.TypeOf(v)); derr != nil {
			return derr
		}
	}
	msg := err.Error()
	if yerr != nil {
		msg = yerr.GetMessage()
	}
	return &Error{Pos: pos, Path: path, Msg: msg}
}

var durationType = reflect.TypeOf(time.Duration(0))

// badDuration finds a time.Duration field of t whose value in node does not
// parse, recursing into nested structs.
func badDuration(file, path string, node ast.Node, t reflect.Type) *Error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	m, ok := node.(*ast.MappingNode)
	if !ok || t.Kind() != reflect.Struct {
		return nil
	}
	for i := range t.NumField() {
		f := t.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		value := valueOf(m, key, nil)
		if value == nil {
			continue
		}
		if f.Type == durationType {
			text := scalar(value)
			if _, err := time.ParseDuration(text); err != nil {
				return errorAt(file, value, joinPath(path, key), "%q is not a duration; write one such as 30s, 1m or 500ms", text)
			}
			continue
		}
		if e := badDuration(file, joinPath(path, key), value, f.Type); e != nil {
			return e
		}
	}
	return nil
}

func joinPath(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "." + b
}

// yamlPath turns the decoder's Go field path ("settings.Auth.Role") into the
// keys a user wrote ("auth.role").
func yamlPath(t reflect.Type, goPath string) string {
	parts := strings.Split(goPath, ".")
	var keys []string
	for _, name := range parts[1:] {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			break
		}
		f, ok := t.FieldByName(name)
		if !ok {
			break
		}
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		keys = append(keys, key)
		t = f.Type
	}
	return strings.Join(keys, ".")
}

func friendlyType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]interface") || goType == "[]any":
		return "a list"
	case strings.HasPrefix(goType, "map[string]interface") || strings.HasPrefix(goType, "map[string]any"):
		return "a mapping"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a number"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "yaml.MapSlice"):
		return "a mapping"
	case strings.HasSuffix(goType, "Duration"):
		return "a duration such as 30s"
	}
	return goType
}

// yamlKeys lists the yaml keys of the struct t points to.
func yamlKeys(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		switch {
		case tag == "-":
		case f.Anonymous && tag == "":
			keys = append(keys, yamlKeys(f.Type)...)
		case tag != "":
			keys = append(keys, tag)
		case f.IsExported():
			keys = append(keys, strings.ToLower(f.Name))
		}
	}
	return keys
}

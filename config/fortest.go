package config

import (
	"fmt"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/secretrun/secretrun/providers"
)

// TestEnvironment is the environment name SourceFromYAML gives sources.
const TestEnvironment = "test"

// OptionsFromYAML parses a YAML mapping as a provider's settings block, as
// provider tests need it. Positions name "test.yaml".
func OptionsFromYAML(text string) (providers.Options, error) {
	m, err := parseMapping(text)
	if err != nil {
		return nil, err
	}
	return &options{file: "test.yaml", path: "providers.test", node: m, extra: []string{"type"}}, nil
}

// SourceFromYAML parses a YAML mapping as one source of provider p, common
// keys included (`from:` may be left out), as provider tests need it. The
// environment being run is TestEnvironment.
func SourceFromYAML(p providers.Provider, providerName, text string) (*providers.Source, error) {
	m, err := parseMapping(text)
	if err != nil {
		return nil, err
	}
	d := &document{file: "test.yaml", providers: []*providerNode{{name: providerName}}}
	if valueOf(m, "from", nil) == nil {
		if m, err = parseMapping(fmt.Sprintf("from: %s\n%s", providerName, text)); err != nil {
			return nil, err
		}
	}
	common, own, err := d.splitSource("source", m)
	if err != nil {
		return nil, err
	}
	src := common.source(position(d.file, m))
	src.Environment = TestEnvironment
	if src.Ref, err = p.ParseSource(src, &options{file: d.file, path: "source", node: own, extra: commonKeyNames}); err != nil {
		return nil, err
	}
	return src, nil
}

func parseMapping(text string) (*ast.MappingNode, error) {
	tree, err := parser.ParseBytes([]byte(text), 0)
	if err != nil {
		return nil, yamlSyntaxError("test.yaml", err)
	}
	if len(tree.Docs) == 0 || tree.Docs[0].Body == nil {
		return ast.Mapping(nil, false), nil
	}
	m, ok := tree.Docs[0].Body.(*ast.MappingNode)
	if !ok {
		return nil, fmt.Errorf("test.yaml: not a mapping")
	}
	return m, nil
}

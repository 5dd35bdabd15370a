// Package exec reads secrets from any program that prints them (`op read`,
// `bws secret get`, `pass show`, `sops -d`, `gcloud secrets versions
// access`, an in-house tool): provider type `exec`. No SDK is linked; the
// program is a child process, started without a shell.
//
// Provider settings:
//
//	command:         the program and its first arguments, as a list (required);
//	                 each source's args are appended
//	format:          raw (default) | json | dotenv: how stdout is read
//	timeout:         how long one run may take (default 30s, 5m when interactive)
//	interactive:     give the program the terminal, so that it can prompt
//	max_concurrency: how many runs at a time (default 4; 1 when interactive)
//	not_found:       when a failure means the secret does not exist:
//	                 exit_codes: [N, ...] and/or stderr: a regular expression
//
// Source keys:
//
//	args:   arguments appended to command
//	format: overrides the provider's format for this source
//
// Formats: raw is the whole of stdout as one value, named with `as:`, less
// one trailing newline (what `pass show` and `op read` print). json is one
// object: strings as they are, numbers and booleans as their JSON text, null
// as an empty string, objects and arrays as compact JSON marked Nested.
// dotenv is KEY=value lines as github.com/joho/godotenv reads them (quotes,
// `export`, comments, multi-line double-quoted values; `$VAR` refers to keys
// earlier in the same output, never to the environment).
//
// The program gets secretrun's own environment (providers.Env.Environ), an
// empty stdin (/dev/null) and secretrun's working directory; stdout is read
// up to MaxOutput bytes, and stderr is kept for messages. It runs in a process
// group of its own, so a timeout kills it and every process it started. A
// failure (a non-zero exit, a timeout, output that cannot be read in its
// format) names the provider, the command line and the reason, and quotes
// the end of the program's stderr with every value this provider has read
// replaced by *****; stdout is never quoted.
//
// With interactive: true the program's stdin and stderr are the terminal
// (/dev/tty; CONIN$ and CONOUT$ on Windows), so it can ask for a passphrase,
// as gpg's pinentry or `op signin` do; stdout is still what is read. Its
// sources run one at a time, so that prompts do not interleave, and the
// program stays in secretrun's process group, since a background group
// cannot read the terminal: Ctrl-C reaches it, and a timeout kills only the
// program itself. Without a terminal (CI, a container without -t) it runs as
// if interactive were false.
//
// There is no cheap way to ask a program whether a secret changed, so the
// provider implements no Versioner: with watch on, every poll runs the
// program once per distinct source and compares the values.
package exec

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// TypeName is the value of `type:` for this provider.
const TypeName = "exec"

// MaxOutput is the most a program may print on stdout for one source. It is
// far above what environment variables can hold (the kernel limits each to
// 128 KiB on Linux) and bounds what a runaway program costs.
const MaxOutput = 1 << 20

const (
	defaultTimeout            = 30 * time.Second
	defaultInteractiveTimeout = 5 * time.Minute
	defaultConcurrency        = 4
)

// Type returns the provider type to register.
func Type() providers.Type {
	return providers.Type{Name: TypeName, New: func(name string, opts providers.Options, env providers.Env) (providers.Provider, error) {
		return newProvider(name, opts, env, openTerminal)
	}}
}

type settings struct {
	Command        []string      `yaml:"command"`
	Format         string        `yaml:"format"`
	Timeout        time.Duration `yaml:"timeout"`
	Interactive    bool          `yaml:"interactive"`
	MaxConcurrency int           `yaml:"max_concurrency"`
	NotFound       *notFound     `yaml:"not_found"`
}

type notFound struct {
	ExitCodes []int  `yaml:"exit_codes"`
	Stderr    string `yaml:"stderr"`
}

type format string

const (
	formatRaw    format = "raw"
	formatJSON   format = "json"
	formatDotenv format = "dotenv"
)

func parseFormat(s string) (format, error) {
	switch f := format(s); f {
	case formatRaw, formatJSON, formatDotenv:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (one of raw, json, dotenv)", s)
}

type provider struct {
	name         string
	env          providers.Env
	command      []string
	format       format
	timeout      time.Duration
	interactive  bool
	concurrency  int
	notFoundExit map[int]bool
	notFoundErr  *regexp.Regexp
	// openTTY opens the terminal for an interactive program; tests give
	// a pseudo-terminal.
	openTTY func() (*terminal, error)

	// seen holds the values of the last Fetch, to mask them in the stderr
	// of a program that fails in the next one.
	mu   sync.Mutex
	seen []string
}

func newProvider(name string, opts providers.Options, env providers.Env, term func() (*terminal, error)) (*provider, error) {
	var s settings
	if err := opts.Decode(&s); err != nil {
		return nil, err
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return nil, errors.New("missing `command:`, the program to run and its first arguments as a list, such as [pass, show]")
	}
	if len(s.Command) == 1 && strings.ContainsAny(s.Command[0], " \t") {
		return nil, fmt.Errorf("command %q is one word with spaces: no shell splits it, so write it as a list, such as [%s]", s.Command[0], strings.Join(strings.Fields(s.Command[0]), ", "))
	}
	p := &provider{name: name, env: env, command: s.Command, format: formatRaw, interactive: s.Interactive, openTTY: term}
	if s.Format != "" {
		f, err := parseFormat(s.Format)
		if err != nil {
			return nil, err
		}
		p.format = f
	}
	switch {
	case s.Timeout < 0:
		return nil, errors.New("timeout must be a positive duration such as 10s")
	case s.Timeout > 0:
		p.timeout = s.Timeout
	case s.Interactive:
		p.timeout = defaultInteractiveTimeout
	default:
		p.timeout = defaultTimeout
	}
	switch {
	case s.MaxConcurrency < 0:
		return nil, errors.New("max_concurrency must be at least 1")
	case s.Interactive && s.MaxConcurrency > 1:
		return nil, errors.New("an interactive program runs one source at a time, so that prompts do not interleave: max_concurrency cannot be above 1")
	case s.MaxConcurrency > 0:
		p.concurrency = s.MaxConcurrency
	case s.Interactive:
		p.concurrency = 1
	default:
		p.concurrency = defaultConcurrency
	}
	if nf := s.NotFound; nf != nil {
		if len(nf.ExitCodes) == 0 && nf.Stderr == "" {
			return nil, errors.New("not_found needs exit_codes or stderr (a regular expression)")
		}
		p.notFoundExit = map[int]bool{}
		for _, c := range nf.ExitCodes {
			if c <= 0 || c > 255 {
				return nil, fmt.Errorf("not_found.exit_codes: %d is not a failing exit status (1 to 255)", c)
			}
			p.notFoundExit[c] = true
		}
		if nf.Stderr != "" {
			re, err := regexp.Compile(nf.Stderr)
			if err != nil {
				return nil, fmt.Errorf("not_found.stderr is not a regular expression: %w", err)
			}
			p.notFoundErr = re
		}
	}
	return p, nil
}

// ref is what a source runs: the command line and how its stdout is read.
type ref struct {
	argv   []string
	format format
}

// String is the command line, each argument quoted when it has to be, so
// that messages show exactly what ran.
func (r ref) String() string {
	var b strings.Builder
	for i, a := range r.argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`") || !strconv.CanBackquote(a) {
			b.WriteString(strconv.Quote(a))
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// key identifies sources that run the same command line, which one run
// serves.
func (r ref) key() string { return strings.Join(r.argv, "\x00") }

func (p *provider) ParseSource(src *providers.Source, opts providers.Options) (providers.Ref, error) {
	var own struct {
		Args   []string `yaml:"args"`
		Format string   `yaml:"format"`
	}
	if err := opts.Decode(&own); err != nil {
		return nil, err
	}
	r := ref{argv: append(append([]string(nil), p.command...), own.Args...), format: p.format}
	if own.Format != "" {
		f, err := parseFormat(own.Format)
		if err != nil {
			return nil, err
		}
		r.format = f
	}
	switch {
	case r.format == formatRaw && src.As == "":
		return nil, errors.New("format raw reads one value: name its variable with `as:` (or set format: json or dotenv)")
	case r.format != formatRaw && src.As != "":
		return nil, fmt.Errorf("`as` names the one value of format raw, but this source reads %s fields: select them with keys, map or prefix", r.format)
	}
	if src.Version != "" {
		return nil, errors.New("`version` does not apply to exec: pass the version in args, as the program expects it")
	}
	return r, nil
}

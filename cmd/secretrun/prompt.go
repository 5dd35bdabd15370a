package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/secretrun/secretrun/providers"
)

// prompter asks on the terminal, without echo for secrets; when standard
// input is not a terminal it reads one line per answer, so scripts can pipe
// answers in. Answers never come from argv, which other users can read.
type prompter struct {
	in     *os.File
	lines  *bufio.Reader
	stderr io.Writer
}

func newPrompter(d deps) *prompter {
	return &prompter{in: d.stdin, lines: bufio.NewReader(d.stdin), stderr: d.stderr}
}

func (p *prompter) terminal() bool { return p.in != nil && term.IsTerminal(int(p.in.Fd())) }

func (p *prompter) Ask(label string) (string, error) {
	if p.terminal() {
		fmt.Fprintf(p.stderr, "%s: ", label)
	}
	return p.readLine(label)
}

func (p *prompter) AskSecret(label string) (providers.Secret, error) {
	if !p.terminal() {
		s, err := p.readLine(label)
		return providers.NewSecret(s), err
	}
	fmt.Fprintf(p.stderr, "%s (input hidden): ", label)
	b, err := term.ReadPassword(int(p.in.Fd()))
	fmt.Fprintln(p.stderr)
	if err != nil {
		return providers.Secret{}, fmt.Errorf("read %s: %w", label, err)
	}
	return providers.NewSecret(string(b)), nil
}

func (p *prompter) readLine(label string) (string, error) {
	if p.in == nil {
		return "", fmt.Errorf("read %s: no standard input", label)
	}
	line, err := p.lines.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read %s from standard input: %w", label, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// readAll reads a whole value from standard input when it is not a
// terminal, so multi-line values (keys, certificates) can be piped in; one
// trailing newline is dropped, as `echo` and heredocs add it.
func (p *prompter) readAll(label string) (providers.Secret, error) {
	if p.terminal() {
		return p.AskSecret(label)
	}
	b, err := io.ReadAll(p.lines)
	if err != nil {
		return providers.Secret{}, fmt.Errorf("read %s from standard input: %w", label, err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return providers.NewSecret(s), nil
}

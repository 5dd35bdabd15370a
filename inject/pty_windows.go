//go:build windows

package inject

import "io"

// onTerminal is nil on Windows: a masked child's output goes through pipes
// there, terminal or not (a pseudo-console is not supported).
func onTerminal(stdout, stderr io.Writer) *Terminal { return nil }

// MessageWriter returns w: secretrun never puts a Windows console in raw
// mode.
func MessageWriter(w io.Writer) io.Writer { return w }

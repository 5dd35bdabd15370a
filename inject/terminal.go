package inject

import "os"

// Terminal is where a masked child's output ends up when that is a
// terminal. A child given pipes there would see no terminal: no colours,
// different progress bars and prompts, a wrong `tput cols`. So each child
// runs on a pseudo-terminal of its own, whose output goes through the
// masker to Out; secretrun's own terminal is put in raw mode and keystrokes
// are relayed, so line editing and Ctrl-C, Ctrl-D and Ctrl-\ are the
// pseudo-terminal's, as the child expects. Windows keeps pipes.
type Terminal struct {
	// Out is the terminal the supervisor's Stdout writes to: the
	// pseudo-terminal gets its size, on start and on every SIGWINCH.
	Out *os.File
	// Stderr says the child's stderr is the pseudo-terminal too, one
	// stream with stdout, because secretrun's stderr is a terminal as
	// well; otherwise the child's stderr is a pipe to the supervisor's
	// Stderr, and a redirection of secretrun's stderr still holds.
	Stderr bool
}

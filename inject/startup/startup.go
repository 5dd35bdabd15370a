// Package startup keeps the garbage collector out of secretrun's start-up.
//
// Package initialisation and the first fetch allocate a few megabytes, and
// with the collector's default target of 4 MB the runtime collects once or
// twice on the way, ≈ 2 ms of a start that is on the path of every `npm
// start`. Almost all of it is either kept for the run or garbage that an
// exec discards with the process. So collection is off from the first
// package initialisation on (main imports this package before any other of
// secretrun's), with a memory limit that collects anyway should a large
// config need it, and back on after a second: by then secretrun has exec'd
// the child or supervises it, and then it gives back to the system what
// start-up left behind — its garbage, and the pages of its own code it
// touched — before it settles down to wait.
//
// A supervisor then collects at a lower target than the runtime's default.
// It keeps well under a megabyte live (the environment, a few clients), and
// the default lets the heap grow to the runtime's 4 MB minimum between
// collections: a watching secretrun's resident set rose by ≈ 2 MB over its
// first few seconds of polls and stayed there. At the lower target the
// heap settles near 1 MB; a collection of so small a heap takes well under
// a millisecond, and a poll allocates a few kilobytes.
//
// A GOGC or GOMEMLIMIT in secretrun's environment is the user's choice and
// is left alone.
//
// The package also grows the stack that package initialisation and main
// run on to what a start needs, in one step while it is shallow (see
// reserveStack).
package startup

import (
	"math"
	"os"
	"runtime/debug"
	"time"
)

// heapLimit is how much memory the runtime may use while collection is off
// before it collects anyway: far above what one start of a normal config
// takes (≈ 5 MB for one Vault path, ≈ 40 MB for 1000), so that only a huge
// config is collected during start-up.
const heapLimit = 64 << 20

// supervisingGCPercent is the collector's target once start-up is over:
// it scales the runtime's 4 MB minimum heap down to 1 MB.
const supervisingGCPercent = 25

// startUpLasts is how long after the first package initialisation
// start-up is taken to be over.
const startUpLasts = time.Second

func init() {
	reserveStack(len(os.Args))
	if begin(os.Getenv) {
		time.AfterFunc(startUpLasts, end)
	}
}

// reservedStack is the stack the main goroutine grows to at once: what
// `secretrun run` reaches on its way to the exec (command line, config,
// a provider's client), measured at 32 KiB.
const reservedStack = 32 << 10

// reserveStack makes the runtime grow the calling goroutine's stack to
// reservedStack now. A goroutine starts with a few kilobytes and the
// runtime doubles its stack whenever a call would overflow it: each
// doubling copies the stack and walks every frame on it through the
// function tables, pages of the binary that are faulted in for nothing
// else. On the way to the exec that happened four times, the last ones
// deep inside the config and the AWS client; here, with a few frames on
// the stack, the one copy costs next to nothing. The frame (with the
// runtime's guard and what is already in use) fits only in reservedStack,
// so the runtime grows straight to it; its contents are never used.
//
//go:noinline
func reserveStack(i int) byte {
	var frame [reservedStack * 3 / 4]byte
	frame[i%len(frame)] = byte(i)
	return frame[(i*7)%len(frame)]
}

// begin turns collection off, unless the user tuned it, and reports whether
// it did.
func begin(getenv func(string) string) bool {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(heapLimit)
	return true
}

// ReleaseCode unmaps the pages of secretrun's own code that package
// initialisation touched, for a run that will supervise for long (watch,
// PID 1, listen/proxy): the code that set up four SDKs' tables is not
// needed again, and without it the fetch and the supervisor start from a
// smaller resident set, so their peak is lower too. Only what they use is
// mapped back, at the price of those page faults. An exec'd run has no use
// for it, and a short supervised one (masking a CI step) would pay for
// nothing.
func ReleaseCode() { releaseCode() }

// end turns collection back on, at a supervisor's target, and returns what
// start-up left behind.
func end() {
	debug.SetGCPercent(supervisingGCPercent)
	debug.SetMemoryLimit(math.MaxInt64)
	debug.FreeOSMemory()
	releaseCode()
}

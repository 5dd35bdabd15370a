// Package memfile keeps secrets in memory-only files: files that exist on
// no filesystem, that a child process inherits and opens by a path such as
// /dev/fd/64, and whose contents can be replaced in place while the child
// runs. On Linux each file is a memfd; other systems have no such thing, and
// New reports ErrUnsupported rather than fall back to a temporary file or a
// named pipe.
package memfile

import "errors"

// ErrUnsupported is returned by New on systems without memory-only files.
var ErrUnsupported = errors.New("memory-only files need Linux (memfd_create); this system has no file that lives only in memory, and secretrun writes no temporary file instead")

// FirstFD is the lowest descriptor number a file is given, in secretrun and
// in the child alike. It is kept clear of the low numbers that other
// conventions hand to a child (3 and up for LISTEN_FDS socket activation),
// so a file never takes the place of another inherited descriptor.
const FirstFD = 64

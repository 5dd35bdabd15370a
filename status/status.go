// Package status answers "is anything still running with the old key?":
// every secretrun that supervises a child serves, on a Unix socket of its
// user's, which child it runs and the version of each secret it holds;
// List asks all of them. The socket answers only its own user and root,
// checked by the peer's credentials, and never holds a value.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/secretrun/secretrun/inject"
)

// Child is one supervised child, as its secretrun describes it.
type Child struct {
	// PID is secretrun's, ChildPID the child's.
	PID      int    `json:"pid"`
	ChildPID int    `json:"child_pid"`
	Command  string `json:"command"`
	// User is the uid that runs them.
	User        int       `json:"uid"`
	Config      string    `json:"config"`
	Environment string    `json:"environment"`
	Scope       string    `json:"scope,omitempty"`
	Started     time.Time `json:"started"`
	Sources     []Source  `json:"sources"`
}

// Source is one source of the child's secrets and the version the child
// holds.
type Source struct {
	Provider string `json:"provider"`
	Source   string `json:"source"`
	// Version is the backend's label (v3, a Secrets Manager version id),
	// or "" when the backend has none.
	Version string `json:"version,omitempty"`
	// Since is when the child got this version.
	Since time.Time `json:"since"`
}

// Dir is where the current user's sockets live: $XDG_RUNTIME_DIR/secretrun,
// or a directory of the user's own in the temporary directory.
func Dir(getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "secretrun")
	}
	return filepath.Join(os.TempDir(), "secretrun-"+strconv.Itoa(os.Getuid()))
}

// Dirs are the directories `secretrun status` looks in: the user's own,
// and for root every user's.
func Dirs(getenv func(string) string) []string {
	dirs := []string{Dir(getenv)}
	if os.Getuid() == 0 {
		for _, pattern := range []string{"/run/user/*/secretrun", filepath.Join(os.TempDir(), "secretrun-*")} {
			more, _ := filepath.Glob(pattern)
			dirs = append(dirs, more...)
		}
	}
	seen := map[string]bool{}
	out := dirs[:0]
	for _, d := range dirs {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// Server serves one supervisor's Child.
type Server struct {
	ln   net.Listener
	path string

	mu    sync.Mutex
	child Child
	done  chan struct{}
}

// Listen serves base, kept up to date by Observe, on DIR/PID.sock. DIR is
// created 0700, and must be the user's own and closed to others.
func Listen(dir string, base Child) (*Server, error) {
	if err := ownDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, strconv.Itoa(base.PID)+".sock")
	_ = os.Remove(path) // a socket left by a process that had this PID
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	base.User = os.Getuid()
	s := &Server{ln: ln, path: path, child: base, done: make(chan struct{})}
	go s.serve()
	return s, nil
}

func ownDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ownedByMe(fi) {
		return fmt.Errorf("status: %s must be a directory of this user's, mode 0700", dir)
	}
	return nil
}

func (s *Server) serve() {
	defer close(s.done)
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.answer(conn.(*net.UnixConn))
	}
}

// answer writes the state to a peer of this user's or root, and nothing at
// all to anyone else.
func (s *Server) answer(conn *net.UnixConn) {
	defer conn.Close()
	uid, err := peerUID(conn)
	if err != nil || (uid != os.Getuid() && uid != 0) {
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	s.mu.Lock()
	b, err := json.Marshal(s.child)
	s.mu.Unlock()
	if err == nil {
		_, _ = conn.Write(b)
	}
}

// Observe follows the engine's events: a start names the new child and the
// versions it holds; a rotation applied by signal changes the versions of
// the running child.
func (s *Server) Observe(e inject.Event) {
	switch {
	case e.Kind == inject.EventStart:
		s.update(e.Secrets, e.Time, e.PID)
	case e.Kind == inject.EventRotate && e.Action == inject.ActionSignal:
		s.update(e.Secrets, e.Time, 0)
	}
}

func (s *Server) update(secrets *inject.Secrets, at time.Time, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pid != 0 {
		s.child.ChildPID = pid
	}
	if secrets == nil {
		return
	}
	type key struct{ provider, source string }
	since := map[key]Source{}
	for _, src := range s.child.Sources {
		since[key{src.Provider, src.Source}] = src
	}
	var sources []Source
	seen := map[key]bool{}
	for _, v := range secrets.Vars {
		k := key{v.Source.Provider, v.Source.Ref.String()}
		if seen[k] {
			continue
		}
		seen[k] = true
		src := Source{Provider: k.provider, Source: k.source, Version: label(v.Version), Since: at.UTC()}
		if old, ok := since[k]; ok && old.Version == src.Version {
			src.Since = old.Since
		}
		sources = append(sources, src)
	}
	s.child.Sources = sources
}

// label shows a numeric version as v3 and anything else as it is.
func label(v string) string {
	if _, err := strconv.ParseUint(v, 10, 64); err == nil {
		return "v" + v
	}
	return v
}

// Serving reports whether s listens: a zero Server stands for one that
// could not.
func (s *Server) Serving() bool { return s.ln != nil }

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	err := s.ln.Close()
	<-s.done
	_ = os.Remove(s.path)
	return err
}

// ErrRefused means a supervisor's socket said nothing: it serves another
// user.
var ErrRefused = errors.New("refused: the supervisor belongs to another user")

// Ask reads one supervisor's state from its socket.
func Ask(path string) (Child, error) {
	var c Child
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return c, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	dec := json.NewDecoder(conn)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return c, ErrRefused
		}
		return c, err
	}
	return c, nil
}

// List asks every socket in dirs. Sockets nobody listens on any more (a
// supervisor that was killed) are skipped; other failures are returned
// beside what could be read.
func List(dirs []string) ([]Child, []error) {
	var out []Child
	var errs []error
	for _, dir := range dirs {
		socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
		for _, sock := range socks {
			c, err := Ask(sock)
			switch {
			case err == nil:
				out = append(out, c)
			case isStale(err):
			default:
				errs = append(errs, fmt.Errorf("%s: %w", sock, err))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, errs
}

func isStale(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

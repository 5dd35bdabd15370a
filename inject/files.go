package inject

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/secretrun/secretrun/inject/memfile"
	"github.com/secretrun/secretrun/providers"
)

// Memory-only files
//
// A source's `files:` fields and every template of `files:` become files
// that exist only in memory (memfile): the child's variable holds a path
// such as /dev/fd/64 and the child inherits the descriptor it names.
// Every assembly of the secrets renders the templates (RenderFiles) and
// gives each file's variable its path (memFiles.bind); the contents are
// written at start, before the child exists, and on rotation just before
// on_change applies (memFiles.write, from the supervisor's OnRotate), so a
// child that is signalled, or started again, reads the new contents. The
// files stay the same files for the whole run: a running child keeps its
// paths.

// Template is a memory-only file rendered from the secrets: one entry of
// `files:` in the config.
type Template interface {
	// Name is the variable that holds the file's path.
	Name() string
	// Pos is where the entry is written: "secretrun.yaml:20:3".
	Pos() string
	// Render renders the file from the variables, by name. A variable it
	// uses but vars lacks is an error. The error names the config's file,
	// line and column, and never holds a value.
	Render(vars map[string]string) (providers.Secret, error)
}

// RenderFiles renders every template from the variables of s, those of
// env: false sources included, files excluded, and adds each as a file
// variable after them; a template replaces a variable of the same name.
func RenderFiles(s *Secrets, templates []Template) error {
	if len(templates) == 0 {
		return nil
	}
	vars := make(map[string]string, len(s.Vars))
	for _, v := range s.Vars {
		if !v.File {
			vars[v.Name] = v.Value.Reveal()
		}
	}
	index := make(map[string]int, len(s.Vars))
	for i, v := range s.Vars {
		index[v.Name] = i
	}
	for _, t := range templates {
		out, err := t.Render(vars)
		if err != nil {
			return err
		}
		src := &providers.Source{Provider: "template", Ref: templateRef(t.Name()), Pos: t.Pos()}
		s.add(Variable{Name: t.Name(), Value: out, File: true, Template: t, Source: src}, index)
	}
	return nil
}

// templateRef names a template where a source's ref is expected.
type templateRef string

func (r templateRef) String() string { return "files." + string(r) }

// memFiles are the memory-only files of one run, by variable name. The
// watcher binds the secrets it assembles while the supervisor writes the
// ones it applies, hence the lock.
type memFiles struct {
	mu    sync.Mutex
	files map[string]*memfile.File
	order []string
	log   *slog.Logger
	// unlocked are the files already reported as swappable.
	unlocked map[string]bool
}

func newMemFiles(log *slog.Logger) *memFiles {
	return &memFiles{files: map[string]*memfile.File{}, log: log, unlocked: map[string]bool{}}
}

// bind gives every file variable of s its path, making the files that do
// not exist yet, empty.
func (m *memFiles) bind(s *Secrets) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range s.Vars {
		v := &s.Vars[i]
		if !v.File {
			continue
		}
		f, ok := m.files[v.Name]
		if !ok {
			var err error
			if f, err = memfile.New(v.Name); err != nil {
				if errors.Is(err, memfile.ErrUnsupported) {
					return fmt.Errorf("%s: %s: %w; on this system read the value from a variable instead (map:)", v.Pos(), v.Name, err)
				}
				return fmt.Errorf("%s: %s: make a memory-only file: %w", v.Pos(), v.Name, err)
			}
			m.files[v.Name] = f
			m.order = append(m.order, v.Name)
		}
		v.Path = f.Path()
	}
	return nil
}

// write puts the contents of s's files in place, and empties the files
// whose variable s no longer has (an optional source that was deleted), so
// no stale secret stays readable. It returns once every file holds its new
// contents.
func (m *memFiles) write(s *Secrets) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	present := map[string]bool{}
	var errs []error
	for _, v := range s.Vars {
		f, ok := m.files[v.Name]
		if !v.File || !ok {
			continue
		}
		present[v.Name] = true
		if err := f.Write([]byte(v.Value.Reveal())); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.Name, err))
			continue
		}
		if !f.Locked() && !m.unlocked[v.Name] {
			m.unlocked[v.Name] = true
			m.log.Warn(fmt.Sprintf("%s: cannot lock the file's %d bytes in memory (raise ulimit -l, RLIMIT_MEMLOCK); it stays memory-only but may be swapped out", v.Name, f.Size()))
		}
	}
	for _, name := range m.order {
		if !present[name] {
			if err := m.files[name].Write(nil); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// inherit lists the descriptors a child must inherit, each at its own
// number.
func (m *memFiles) inherit() []*os.File {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*os.File, 0, len(m.order))
	for _, name := range m.order {
		out = append(out, m.files[name].Inherit())
	}
	return out
}

// inheritable lets every file survive secretrun's exec into the child.
func (m *memFiles) inheritable() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range m.order {
		if err := m.files[name].Inheritable(); err != nil {
			return fmt.Errorf("%s: pass the memory-only file on: %w", name, err)
		}
	}
	return nil
}

func (m *memFiles) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range m.order {
		_ = m.files[name].Close()
	}
}

// fileContents lists every file's name and contents, to tell whether a
// rotation changed what the child reads, not only its environment.
func fileContents(s *Secrets) []string {
	var out []string
	for _, v := range s.Vars {
		if v.File {
			out = append(out, v.Name+"="+v.Value.Reveal())
		}
	}
	return slices.Clip(out)
}

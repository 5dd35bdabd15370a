package scan

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Stats say how much a scan read.
type Stats struct {
	Files int
	Bytes int64
}

// Tree searches the regular files under each root (a file or a directory),
// skipping .git directories and not following symbolic links. Paths in the
// findings are as the walk forms them from the roots.
func (s *Scanner) Tree(ctx context.Context, roots []string) ([]Finding, Stats, error) {
	paths := make(chan string)
	var (
		mu       sync.Mutex
		out      []Finding
		stats    Stats
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var buf []byte
			for p := range paths {
				fds, n, err := s.searchPath(p, &buf)
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				out = append(out, fds...)
				stats.Files++
				stats.Bytes += n
				mu.Unlock()
			}
		})
	}
	walkErr := func() error {
		defer close(paths)
		for _, root := range roots {
			err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if e.IsDir() {
					if e.Name() == ".git" {
						return filepath.SkipDir
					}
					return nil
				}
				if e.Type().IsRegular() {
					paths <- path
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}()
	wg.Wait()
	if walkErr != nil {
		return nil, stats, walkErr
	}
	if firstErr != nil {
		return nil, stats, firstErr
	}
	Sort(out)
	return out, stats, nil
}

func (s *Scanner) searchPath(path string, buf *[]byte) ([]Finding, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if *buf == nil {
		*buf = make([]byte, chunkSize+s.finder.MaxLen()-1)
	}
	c := &countingReader{r: f}
	fds, err := s.searchFile(c, *buf, Finding{Path: path})
	return fds, c.n, err
}

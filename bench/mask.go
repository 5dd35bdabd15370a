//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maskResult compares `secretrun run --mask -- cat FILE` with `cat FILE`,
// both writing into a pipe that this program drains.
type maskResult struct {
	size        int64
	secrets     int
	occurrences int
	direct      sample
	masked      sample
	outBytes    int64
}

const maskTarget = 500 // MB/s

func (m *maskResult) mbps(s sample) float64 {
	return float64(m.size) / 1e6 / s.median().Seconds()
}

func (h *harness) measureMask(ctx context.Context) (*maskResult, error) {
	const secrets = 100
	size := int64(256 << 20)
	runs := 5
	if h.opts.smoke {
		size, runs = 4<<20, 1
	}
	s, err := h.infisicalServer()
	if err != nil {
		return nil, err
	}
	values := make([]string, secrets)
	for i := range values {
		values[i] = randomValue()
		s.SetSecret(infisicalProject, infisicalEnv, "/mask", fmt.Sprintf("MASK_%d", i), values[i])
	}
	cfg, err := h.writeConfig("mask", fmt.Sprintf("version: 1\nproviders:\n  infisical:\n    type: infisical\n    site_url: %s\n    project_id: %s\nenvironments:\n  bench:\n    - from: infisical\n      environment: %s\n      path: /mask\n",
		s.URL, infisicalProject, infisicalEnv))
	if err != nil {
		return nil, err
	}
	file := filepath.Join(h.dir, "mask-input.log")
	res := &maskResult{size: size, secrets: secrets}
	if res.occurrences, err = writeLog(file, size, values); err != nil {
		return nil, err
	}
	env := append(baseEnv(), "INFISICAL_TOKEN="+s.token)
	direct := []string{"/bin/cat", file}
	masked := []string{h.bin, "run", "--mask", "-c", cfg, "--", "/bin/cat", file}
	for i := range 1 + runs {
		d, _, err := timePiped(ctx, direct, env)
		if err != nil {
			return nil, err
		}
		m, n, err := timePiped(ctx, masked, env)
		if err != nil {
			return nil, err
		}
		if i == 0 && !h.opts.smoke {
			continue // warm-up: the file into the page cache
		}
		res.direct = append(res.direct, d)
		res.masked = append(res.masked, m)
		res.outBytes = n
	}
	return res, nil
}

// timePiped runs argv with its stdout on a pipe that is drained as fast as
// possible, and returns the wall time and the bytes read.
func timePiped(ctx context.Context, argv, env []string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	n, copyErr := io.CopyBuffer(io.Discard, out, make([]byte, 256<<10))
	err = cmd.Wait()
	d := time.Since(start)
	if err == nil {
		err = copyErr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return d, n, nil
}

// writeLog writes size bytes of log-like lines, with one of the values on
// every 1000th line, and returns how many values it wrote.
func writeLog(name string, size int64, values []string) (int, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/api/v1/orders", "/api/v1/users/me", "/healthz", "/api/v2/search?q=shoes&page=3", "/static/app.js"}
	var (
		written     int64
		occurrences int
		line        []byte
		t           = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	for n := 0; written < size; n++ {
		line = t.Add(time.Duration(n)*time.Millisecond).AppendFormat(line[:0], time.RFC3339Nano)
		line = append(line, " INFO http request method=GET path="...)
		line = append(line, paths[rng.IntN(len(paths))]...)
		line = append(line, " status=200 bytes="...)
		line = strconv.AppendInt(line, int64(rng.IntN(100000)), 10)
		line = append(line, " duration_ms="...)
		line = strconv.AppendInt(line, int64(rng.IntN(900)), 10)
		line = append(line, " request_id="...)
		line = strconv.AppendUint(line, rng.Uint64(), 36)
		if n%1000 == 999 {
			line = append(line, " auth=Bearer "...)
			line = append(line, values[rng.IntN(len(values))]...)
			occurrences++
		}
		line = append(line, '\n')
		if rest := size - written; int64(len(line)) > rest {
			line = line[:rest]
		}
		k, err := w.Write(line)
		written += int64(k)
		if err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return occurrences, f.Close()
}

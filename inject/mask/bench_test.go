package mask

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// benchTotal is how much output one benchmark operation pushes through.
const benchTotal = 256 << 20

// BenchmarkMask measures masking 256 MiB of output, read in 32 KiB pieces as
// from the child's pipe, against plain io.Copy over the same reader.
//
//	go test -run '^$' -bench BenchmarkMask -benchtime 5x ./inject/mask/
func BenchmarkMask(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	values := make([]string, 100)
	for i := range values {
		values[i] = randomSecret(r, 16+r.IntN(49))
	}
	text := logText(r, values, 16<<20)
	binary := make([]byte, 16<<20)
	for i := range binary {
		binary[i] = byte(r.Uint32())
	}
	if !bytes.Contains(maskAll(b, values, text[:1<<20]), []byte(Mask)) {
		b.Fatal("the benchmark text has no value in it")
	}

	run := func(b *testing.B, corpus []byte, dst func() io.WriteCloser) {
		b.SetBytes(benchTotal)
		for b.Loop() {
			w := dst()
			if _, err := io.Copy(w, &pipeReader{data: corpus, left: benchTotal}); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	discard := func() io.WriteCloser { return nopCloser{io.Discard} }
	masker := func(values []string) func() io.WriteCloser {
		return func() io.WriteCloser { return New(io.Discard, values, Options{}) }
	}
	b.Run("io.Copy/text", func(b *testing.B) { run(b, text, discard) })
	b.Run("100values/text", func(b *testing.B) { run(b, text, masker(values)) })
	b.Run("1value/text", func(b *testing.B) { run(b, text, masker(values[:1])) })
	// The skip loop moves by the length of the shortest value less 3, so
	// one 4-byte value makes it look at every position.
	b.Run("100values+4byte/text", func(b *testing.B) { run(b, text, masker(append(values[:100:100], "Zq9x"))) })
	b.Run("io.Copy/binary", func(b *testing.B) { run(b, binary, discard) })
	b.Run("100values/binary", func(b *testing.B) { run(b, binary, masker(values)) })
}

// pipeReader hands out left bytes of data, over and over, in pieces of at
// most 32 KiB, and hides bytes.Reader's WriteTo so io.Copy works as it does
// on a pipe.
type pipeReader struct {
	data []byte
	off  int
	left int
}

func (p *pipeReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if p.off == len(p.data) {
		p.off = 0
	}
	n := copy(b[:min(len(b), 32<<10, p.left)], p.data[p.off:])
	p.off += n
	p.left -= n
	return n, nil
}

// nopCloser also hides io.Discard's ReadFrom, so the baseline copies through
// the same 32 KiB buffer as the masking runs.
type nopCloser struct{ w io.Writer }

func (n nopCloser) Write(p []byte) (int, error) { return n.w.Write(p) }
func (nopCloser) Close() error                  { return nil }

// logText returns about n bytes of application log lines, about one line
// in 200 carrying a value, raw or base64-encoded.
func logText(r *rand.Rand, values []string, n int) []byte {
	words := []string{"request", "handled", "user", "session", "cache", "miss",
		"database", "query", "took", "retrying", "connection", "established",
		"the", "of", "and", "config", "loaded", "from", "worker", "started"}
	levels := []string{"INFO", "DEBUG", "WARN", "ERROR"}
	var buf bytes.Buffer
	for buf.Len() < n {
		fmt.Fprintf(&buf, "2025-06-%02dT%02d:%02d:%02d.%03dZ %-5s req=%016x path=/api/v1/items/%d status=%d dur=%d.%dms msg=\"",
			1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000),
			levels[r.IntN(len(levels))], r.Uint64(), r.IntN(100000),
			[]int{200, 201, 204, 404, 500}[r.IntN(5)], r.IntN(500), r.IntN(10))
		for k := range 3 + r.IntN(10) {
			if k > 0 {
				buf.WriteByte(' ')
			}
			buf.WriteString(words[r.IntN(len(words))])
		}
		buf.WriteString("\"")
		switch r.IntN(400) {
		case 0:
			buf.WriteString(" token=" + values[r.IntN(len(values))])
		case 1:
			buf.WriteString(" auth=" + base64.StdEncoding.EncodeToString([]byte(values[r.IntN(len(values))])))
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

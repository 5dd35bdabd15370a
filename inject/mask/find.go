package mask

import (
	"encoding/binary"
	"sort"
)

// Finder finds every occurrence of a fixed set of byte strings with the
// matcher that masks output, for searching files and git history for
// leaked values. It is safe for concurrent use.
type Finder struct {
	m *matcher
	// index maps the matcher's patterns, sorted longest first, back to
	// their positions in the list given to NewFinder.
	index []int
	lens  []int
}

// NewFinder prepares a Finder for patterns, each at least MinLen bytes long
// and all different. It returns nil when patterns is empty.
func NewFinder(patterns []string) *Finder {
	if len(patterns) == 0 {
		return nil
	}
	index := make([]int, len(patterns))
	for i := range index {
		index[i] = i
	}
	sort.SliceStable(index, func(a, b int) bool { return len(patterns[index[a]]) > len(patterns[index[b]]) })
	sorted := make([]string, len(patterns))
	lens := make([]int, len(patterns))
	for i, at := range index {
		if len(patterns[at]) < MinLen {
			panic("mask: NewFinder: a pattern is shorter than MinLen")
		}
		sorted[i] = patterns[at]
		lens[at] = len(patterns[at])
	}
	return &Finder{m: newMatcher(sorted), index: index, lens: lens}
}

// MaxLen is the length of the longest pattern: a reader that searches a
// stream in chunks carries this many bytes less one from chunk to chunk.
func (f *Finder) MaxLen() int { return f.m.maxLen }

// Len is the length of pattern i.
func (f *Finder) Len(i int) int { return f.lens[i] }

// Find calls found for every occurrence of every pattern in data, in order
// of position, with the index of the pattern in the list NewFinder was
// given. Occurrences may overlap, and one pattern may be part of another.
func (f *Finder) Find(data []byte, found func(start, pattern int)) {
	m := f.m
	n, stride := len(data), m.stride
	for j := 0; j+4 <= n; {
		// As in matcher.scan: one window per stride rules out the starts
		// before it, and only windows that pass the filter are looked at.
		q := m.within.skip(data, j+stride-1, stride)
		j = max(j, q-stride+1)
		for end := min(q, n-4); j <= end; j++ {
			x := binary.LittleEndian.Uint32(data[j:])
			if !m.starts.has(x) {
				continue
			}
			for _, i := range m.bucket[x] {
				p := m.pats[i]
				if len(p) <= n-j && string(data[j:j+len(p)]) == p {
					found(j, f.index[i])
				}
			}
		}
	}
}

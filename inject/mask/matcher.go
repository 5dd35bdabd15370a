package mask

import "encoding/binary"

// The matcher finds every occurrence of a fixed set of patterns, all at least
// MinLen (4) bytes long, and is built for output that almost never contains
// one.
//
// Every occurrence of a pattern covers minLen bytes from its start, so it
// fully contains a four-byte window beginning at one of any stride =
// minLen-3 consecutive positions. The hot loop therefore looks at one window
// per stride only: it hashes the window's four bytes and tests one bit in a
// filter of every four-byte window in the first minLen bytes of every
// pattern. Where the filter lets a window through, the positions it stands
// for are tested against a second filter holding only the patterns' first
// four bytes, and only where that one lets a position through are patterns
// compared. With values of 16 bytes and more the loop moves 13 bytes at a
// time, and its cost does not grow with the number of patterns.

const (
	hashMul    = 0x9E3779B1 // Fibonacci hashing: spreads similar windows apart
	filterBits = 18         // 32 KiB, to stay in the L1 cache with the data
)

// filter is a set of four-byte windows, with false positives: about 3% for
// 8000 windows, which is 100 values of 16 bytes and up. Its size is fixed
// so the hot loop needs neither a variable shift nor a bounds check.
type filter [1 << filterBits / 64]uint64

func (f *filter) add(x uint32) {
	h := x * hashMul >> (32 - filterBits)
	f[h>>6] |= 1 << (h & 63)
}

func (f *filter) has(x uint32) bool {
	h := x * hashMul >> (32 - filterBits)
	return f[h>>6]&(1<<(h&63)) != 0
}

// skip returns the first of q, q+stride, q+2*stride... where the window is
// in f or that is too close to the end of data to have a window. Inlined
// into scan, the loop would keep its variables on the stack.
//
//go:noinline
func (f *filter) skip(data []byte, q, stride int) int {
	for ; q+4 <= len(data); q += stride {
		h := binary.LittleEndian.Uint32(data[q:]) * hashMul >> (32 - filterBits)
		if f[h>>6]&(1<<(h&63)) != 0 {
			break
		}
	}
	return q
}

type matcher struct {
	pats   []string
	stride int
	starts *filter // the first four bytes of each pattern
	within *filter // the four-byte windows that begin in a pattern's first stride bytes
	// bucket maps the first four bytes of a pattern to the patterns that
	// start with them, longest first.
	bucket map[uint32][]int32
	maxLen int

	// Prefixes of one, two and three bytes, for the last positions of a
	// write, where four bytes are not yet available.
	pre1 [256]bool
	pre2 *[1 << 16 / 64]uint64
	pre3 map[uint32]bool
}

// newMatcher builds a matcher for pats, which must be sorted longest first
// and each at least MinLen bytes long.
func newMatcher(pats []string) *matcher {
	minLen := len(pats[len(pats)-1])
	m := &matcher{
		pats:   pats,
		stride: minLen - 3,
		starts: new(filter),
		within: new(filter),
		bucket: make(map[uint32][]int32),
		pre2:   new([1 << 16 / 64]uint64),
		pre3:   make(map[uint32]bool),
		maxLen: len(pats[0]),
	}
	for i, p := range pats {
		x := binary.LittleEndian.Uint32([]byte(p[:4]))
		m.starts.add(x)
		for o := range m.stride {
			m.within.add(binary.LittleEndian.Uint32([]byte(p[o : o+4])))
		}
		m.bucket[x] = append(m.bucket[x], int32(i))
		m.pre1[p[0]] = true
		x2 := uint32(p[0]) | uint32(p[1])<<8
		m.pre2[x2>>6] |= 1 << (x2 & 63)
		m.pre3[x&0xFFFFFF] = true
	}
	return m
}

// span is a masked range [start, end) of the writer's buffer.
type span struct{ start, end int }

// spans are ordered and disjoint; a span that overlaps the last one is
// merged into it, so overlapping values come out as one mask and no
// fragment of either shows.
type spans []span

// add records [s, e), ignoring the part before floor, which was already
// written out.
func (sp *spans) add(s, e, floor int) {
	s = max(s, floor)
	if e <= s {
		return
	}
	if k := len(*sp); k > 0 && s < (*sp)[k-1].end {
		(*sp)[k-1].end = max((*sp)[k-1].end, e)
		return
	}
	*sp = append(*sp, span{s, e})
}

// scan decides, for each start position from j on, whether a pattern starts
// there, and adds the longest such occurrence to sp. It returns the first
// position it could not decide because data ends while a pattern could
// still be starting there; with final set, data is known to end for good and
// scan decides every position.
func (m *matcher) scan(data []byte, j int, final bool, sp *spans, floor int) int {
	n, stride := len(data), m.stride
	for {
		// The window at q rules out starts in (q-stride, q]; skip
		// windows until one does not.
		q := m.within.skip(data, j+stride-1, stride)
		j = max(j, q-stride+1)
		for end := min(q, n-4); j <= end; j++ {
			if !m.starts.has(binary.LittleEndian.Uint32(data[j:])) {
				continue
			}
			l, pending := m.longestAt(data[j:], final)
			if pending {
				return j
			}
			if l > 0 {
				sp.add(j, j+l, floor)
			}
			// On to j+1, not j+l: another value may start inside this
			// one and extend past its end.
		}
		if j+4 > n {
			break
		}
	}
	if final {
		return n
	}
	for ; j < n; j++ {
		if m.isPrefix(data[j:]) {
			return j
		}
	}
	return n
}

// longestAt returns the length of the longest pattern that d starts with,
// or pending if d is too short to tell because it is a prefix of a longer
// pattern. d has at least four bytes.
func (m *matcher) longestAt(d []byte, final bool) (l int, pending bool) {
	for _, i := range m.bucket[binary.LittleEndian.Uint32(d)] {
		p := m.pats[i]
		if len(p) <= len(d) {
			if string(d[:len(p)]) == p {
				return len(p), false
			}
		} else if !final && string(d) == p[:len(d)] {
			return 0, true
		}
	}
	return 0, false
}

// isPrefix reports whether d, of one to three bytes, begins some pattern.
func (m *matcher) isPrefix(d []byte) bool {
	switch len(d) {
	case 1:
		return m.pre1[d[0]]
	case 2:
		x := uint32(d[0]) | uint32(d[1])<<8
		return m.pre2[x>>6]&(1<<(x&63)) != 0
	default:
		return m.pre3[uint32(d[0])|uint32(d[1])<<8|uint32(d[2])<<16]
	}
}

package mask

import "encoding/binary"

// The matcher finds every occurrence of a fixed set of patterns, all at least
// MinLen (4) bytes long. Almost every position in ordinary output starts no
// pattern, so the hot loop only hashes the four bytes at each position and
// tests one bit in a filter small enough to stay in the L1 cache; the
// patterns themselves are compared only where the filter lets a position
// through. The cost per byte is the same for 1 or 1000 patterns.

const (
	filterBits  = 18 // 32 KiB of filter: about 0.6% false hits with 1500 patterns
	filterWords = 1 << filterBits / 64
	hashMul     = 0x9E3779B1 // Fibonacci hashing: spreads similar prefixes apart
)

type matcher struct {
	pats   []string
	filter *[filterWords]uint64
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
	m := &matcher{
		pats:   pats,
		filter: new([filterWords]uint64),
		bucket: make(map[uint32][]int32),
		pre2:   new([1 << 16 / 64]uint64),
		pre3:   make(map[uint32]bool),
	}
	for i, p := range pats {
		x := binary.LittleEndian.Uint32([]byte(p[:4]))
		h := hash(x)
		m.filter[h>>6] |= 1 << (h & 63)
		m.bucket[x] = append(m.bucket[x], int32(i))
		m.maxLen = max(m.maxLen, len(p))
		m.pre1[p[0]] = true
		x2 := uint32(p[0]) | uint32(p[1])<<8
		m.pre2[x2>>6] |= 1 << (x2 & 63)
		m.pre3[x&0xFFFFFF] = true
	}
	return m
}

func hash(x uint32) uint32 { return x * hashMul >> (32 - filterBits) }

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
	n := len(data)
	for {
		for ; j+4 <= n; j++ {
			h := hash(binary.LittleEndian.Uint32(data[j:]))
			if m.filter[(h>>6)&(filterWords-1)]&(1<<(h&63)) != 0 {
				break
			}
		}
		if j+4 > n {
			break
		}
		l, pending := m.longestAt(data[j:], final)
		if pending {
			return j
		}
		if l > 0 {
			sp.add(j, j+l, floor)
		}
		// Not j+l: another value may start inside this one and extend past
		// its end.
		j++
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

package mask

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFinderFindsWhatBruteForceFinds compares every occurrence the Finder
// reports with a byte-by-byte search, over random text built from the
// patterns' own bytes so that near misses and overlaps are common.
func TestFinderFindsWhatBruteForceFinds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		alphabet := "abcd"
		var pats []string
		seen := map[string]bool{}
		for len(pats) < 1+r.IntN(6) {
			b := make([]byte, MinLen+r.IntN(12))
			for i := range b {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
			if !seen[string(b)] {
				seen[string(b)] = true
				pats = append(pats, string(b))
			}
		}
		data := make([]byte, r.IntN(400))
		for i := range data {
			data[i] = alphabet[r.IntN(len(alphabet))]
		}
		f := NewFinder(pats)
		var got []string
		f.Find(data, func(start, p int) {
			if string(data[start:start+f.Len(p)]) != pats[p] {
				t.Fatalf("round %d: pattern %d reported at %d, where the data differs", round, p, start)
			}
			got = append(got, fmt.Sprint(start, "/", p))
		})
		var want []string
		for s := range data {
			for p, pat := range pats {
				if bytes.HasPrefix(data[s:], []byte(pat)) {
					want = append(want, fmt.Sprint(s, "/", p))
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: patterns %q in %q:\ngot  %v\nwant %v", round, pats, data, got, want)
		}
	}
}

func TestFinderAtTheEdges(t *testing.T) {
	f := NewFinder([]string{"abcd", "0123456789"})
	for _, tc := range []struct {
		data string
		want []int
	}{
		{"abcd", []int{0}},
		{"abc", nil},
		{"xabcd", []int{1}},
		{"0123456789abcd", []int{0, 10}},
		{"012345678", nil},
		{"..0123456789", []int{2}},
	} {
		var got []int
		f.Find([]byte(tc.data), func(start, _ int) { got = append(got, start) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("Find(%q) found at %v, want %v", tc.data, got, tc.want)
		}
	}
}

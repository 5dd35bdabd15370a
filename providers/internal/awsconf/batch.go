package awsconf

import (
	"fmt"
	"sync"
)

// ReadBatches calls read on every batch, at most limit at a time, and
// merges what the calls return. When a call fails as a whole, the first
// such failure, described by fail, is returned instead.
func ReadBatches[R any](batches [][]string, limit int, read func(batch []string) (map[string]R, error), fail func(batch []string, err error) error) (map[string]R, error) {
	out := make(map[string]R)
	var mu sync.Mutex
	var fatal error
	Parallel(len(batches), limit, func(i int) {
		got, err := read(batches[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if fatal == nil {
				fatal = fail(batches[i], err)
			}
			return
		}
		for id, rd := range got {
			out[id] = rd
		}
	})
	if fatal != nil {
		return nil, fatal
	}
	return out, nil
}

// Several names a batch of ids in a message: "prod/a and 19 more".
func Several(ids []string) string {
	if len(ids) == 1 {
		return ids[0]
	}
	return fmt.Sprintf("%s and %d more", ids[0], len(ids)-1)
}

// Unique returns ids without repeats, in the order of their first
// appearance.
func Unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

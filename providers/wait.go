package providers

import (
	"context"
	"time"
)

// Sleep waits d, or less if ctx ends first, in which case it returns
// ctx's error: the wait between a provider's retries, which a cancelled
// run or a watch that stops must not sit out.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

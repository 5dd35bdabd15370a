package inject

import "context"

// startWatcher starts polling for rotations into l.rotations and returns
// the function that stops it, which returns once the watcher has ended so
// that no backend call outlives Run.
func (s *Supervisor) startWatcher(ctx context.Context, l *loop) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	rotations := make(chan rotation)
	l.rotations = rotations
	w := newWatcher(s.Watch, s.logger())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, rotations)
	}()
	return func() {
		cancel()
		<-done
	}
}

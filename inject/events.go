package inject

import (
	"context"
	"maps"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// Events
//
// Job.Events is told of every start, rotation, renewal, revocation, failed
// fetch and exit, for the audit trail and `secretrun status`. It is called
// from the engine's own goroutines and must return quickly: a slow
// observer would hold up the child's start or a restart.

// EventKind says what happened.
type EventKind string

// The kinds of Event.
const (
	// EventStart: a child started with Event.Secrets (PID is the child's;
	// before an exec, secretrun's own, which the command takes over).
	EventStart EventKind = "start"
	// EventRotate: the secrets rotated to Event.Secrets, and on_change
	// (Event.Action) gives them to the child: a restart, whose start
	// follows, or a signal.
	EventRotate EventKind = "rotation"
	// EventRenew: a provider renewed what it holds (Event.Provider).
	EventRenew EventKind = "renewal"
	// EventRevoke: a provider gave back what it held, on exit or before
	// an exec (Event.Err when that failed).
	EventRevoke EventKind = "revocation"
	// EventFetchFailed: the secrets could not be fetched; nothing started.
	EventFetchFailed EventKind = "fetch_failed"
	// EventExit: secretrun is done with the child: Event.Status, or
	// Event.Err when the child could not be run.
	EventExit EventKind = "exit"
)

// Event is one thing the engine did. Secrets are there to be labelled and
// fingerprinted; an observer never writes a value.
type Event struct {
	Kind    EventKind
	Time    time.Time
	PID     int
	Secrets *Secrets
	Action  Action
	// Provider is the instance's name, for renewals and revocations.
	Provider string
	Status   int
	Err      error
}

func (j *Job) emit(e Event) {
	if j.Events == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	j.Events(e)
}

// observer follows one supervised run for Events: the secrets each child
// starts with are the latest rotated ones.
type observer struct {
	j       *Job
	current *Secrets
}

func (j *Job) observe(sup *Supervisor, initial *Secrets) *observer {
	o := &observer{j: j, current: initial}
	if j.Events != nil {
		sup.Started = func(pid int) { j.emit(Event{Kind: EventStart, PID: pid, Secrets: o.current}) }
	}
	return o
}

// rotated runs on the supervisor's goroutine, as Started does.
func (o *observer) rotated(s *Secrets) {
	o.current = s
	action := ActionRestart
	if o.j.Watch != nil {
		action = o.j.Watch.OnChange
	}
	o.j.emit(Event{Kind: EventRotate, Secrets: s, Action: action})
}

func (o *observer) exited(status int, err error) {
	o.j.emit(Event{Kind: EventExit, Status: status, Err: err})
}

// observedClosers are the providers, those that give something back
// wrapped to report it.
func (j *Job) observedClosers() map[string]providers.Provider {
	if j.Events == nil {
		return j.Providers
	}
	out := maps.Clone(j.Providers)
	for name, p := range out {
		if c, ok := p.(providers.Closer); ok {
			out[name] = &observedCloser{Provider: p, closer: c, name: name, j: j}
		}
	}
	return out
}

type observedCloser struct {
	providers.Provider
	closer providers.Closer
	name   string
	j      *Job
}

func (c *observedCloser) Close(ctx context.Context) error {
	err := c.closer.Close(ctx)
	c.j.emit(Event{Kind: EventRevoke, Provider: c.name, Err: err})
	return err
}

// observedRenewals wraps a renewer's provider to report renewals. Renew is
// called early as well, and then renews nothing: a renewal is a call after
// which the next one is due at another time.
func (j *Job) observedRenewals(name string, h providers.Holder) providers.Holder {
	if j.Events == nil {
		return h
	}
	return &observedHolder{Holder: h, name: name, j: j}
}

type observedHolder struct {
	providers.Holder
	name string
	j    *Job
	next time.Time
}

func (h *observedHolder) Renew(ctx context.Context) (providers.Renewal, error) {
	r, err := h.Holder.Renew(ctx)
	if err == nil && !r.Next.Equal(h.next) {
		if !h.next.IsZero() {
			h.j.emit(Event{Kind: EventRenew, Provider: h.name})
		}
		h.next = r.Next
	}
	return r, err
}

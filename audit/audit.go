// Package audit writes secretrun's audit trail: one JSON record for every
// start, rotation, renewal, revocation, failed fetch and exit, naming the
// process, the config and, per secret, its variable, source and version,
// with an optional keyed fingerprint of the value. A record never holds a
// value, a token or a lease id; Match finds the records of a leaked value
// by its fingerprint.
package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/secretrun/secretrun/inject"
)

// Record is one line of the trail.
type Record struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"`
	Host  string    `json:"host"`
	User  string    `json:"user"`
	// PID is secretrun's; ChildPID the child's (the same after an exec).
	PID      int `json:"pid"`
	ChildPID int `json:"child_pid,omitempty"`
	// Command is the command's name, argv[0]: its arguments may hold
	// secrets.
	Command      string `json:"command"`
	Config       string `json:"config"`
	ConfigDigest string `json:"config_digest"`
	Environment  string `json:"environment"`
	Scope        string `json:"scope,omitempty"`
	// Action is on_change, for a rotation.
	Action   string   `json:"action,omitempty"`
	Provider string   `json:"provider,omitempty"`
	Status   *int     `json:"status,omitempty"`
	Error    string   `json:"error,omitempty"`
	Secrets  []Secret `json:"secrets,omitempty"`
}

// Secret is one variable of a start or a rotation.
type Secret struct {
	Variable string `json:"variable"`
	Provider string `json:"provider"`
	Source   string `json:"source"`
	Version  string `json:"version,omitempty"`
	// Fingerprint is the value's truncated HMAC-SHA256 under the
	// configured key; empty without a key.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Fingerprint is the first 128 bits of HMAC-SHA256(key, value), in hex:
// enough to tell values apart, and without the key no help in guessing one.
func Fingerprint(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Trail turns the engine's events into records and writes them to a sink
// without holding up the child: records wait in a queue for a writer of
// their own, except a start, which is written before Observe returns (an
// exec'd child leaves nobody to write it later), for at most a second.
type Trail struct {
	sink  Sink
	base  Record
	key   []byte
	warn  func(error)
	queue chan queued
	done  chan struct{}

	mu     sync.Mutex
	closed bool
	failed bool
}

type queued struct {
	line    []byte
	written chan struct{}
}

// queueLen bounds the records waiting for a slow sink; beyond it records
// are dropped, and that is reported, once.
const queueLen = 256

// startWait is how long a start waits for its record to be written.
const startWait = time.Second

// NewTrail writes records to sink, each filled in from base (host, user,
// PID, command, config, environment). A nil or empty key leaves records
// without fingerprints. warn is told, once, that the sink fails.
func NewTrail(sink Sink, base Record, key []byte, warn func(error)) *Trail {
	t := &Trail{sink: sink, base: base, key: key, warn: warn, queue: make(chan queued, queueLen), done: make(chan struct{})}
	go t.write()
	return t
}

func (t *Trail) write() {
	defer close(t.done)
	for q := range t.queue {
		if err := t.sink.Write(q.line); err != nil {
			t.fail(fmt.Errorf("audit: %w; records are lost until it works again", err))
		}
		if q.written != nil {
			close(q.written)
		}
	}
}

func (t *Trail) fail(err error) {
	t.mu.Lock()
	first := !t.failed
	t.failed = true
	t.mu.Unlock()
	if first && t.warn != nil {
		t.warn(err)
	}
}

// Observe records one event; it is the engine's Job.Events.
func (t *Trail) Observe(e inject.Event) {
	r := t.record(e)
	line, err := json.Marshal(r)
	if err != nil {
		t.fail(fmt.Errorf("audit: %w", err))
		return
	}
	q := queued{line: append(line, '\n')}
	if e.Kind == inject.EventStart {
		q.written = make(chan struct{})
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	select {
	case t.queue <- q:
	default:
		t.mu.Unlock()
		t.fail(fmt.Errorf("audit: the sink is too slow; records are dropped"))
		return
	}
	t.mu.Unlock()
	if q.written != nil {
		select {
		case <-q.written:
		case <-time.After(startWait):
			t.fail(fmt.Errorf("audit: the sink did not take the start record within %s", startWait))
		}
	}
}

func (t *Trail) record(e inject.Event) Record {
	r := t.base
	r.Time = e.Time.UTC()
	r.Event = string(e.Kind)
	switch e.Kind {
	case inject.EventStart:
		r.ChildPID = e.PID
	case inject.EventRotate:
		r.Action = string(e.Action)
	case inject.EventExit:
		if e.Err == nil {
			status := e.Status
			r.Status = &status
		}
	}
	r.Provider = e.Provider
	if e.Err != nil {
		r.Error = e.Err.Error()
	}
	if e.Secrets != nil {
		for _, v := range e.Secrets.Vars {
			s := Secret{Variable: v.Name, Provider: v.Source.Provider, Source: v.Source.Ref.String(), Version: v.Version}
			if len(t.key) > 0 {
				s.Fingerprint = Fingerprint(t.key, v.Value.Reveal())
			}
			r.Secrets = append(r.Secrets, s)
		}
	}
	return r
}

// Close writes what is queued, waiting at most two seconds, and closes the
// sink.
func (t *Trail) Close() error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.queue)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
	case <-time.After(2 * time.Second):
	}
	return t.sink.Close()
}

// Match reads a trail and returns the records that hold a secret whose
// fingerprint under key is the value's.
func Match(trail io.Reader, key []byte, value string) ([]Record, error) {
	want := Fingerprint(key, value)
	dec := json.NewDecoder(trail)
	var out []Record
	for {
		var r Record
		err := dec.Decode(&r)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read the audit trail: %w", err)
		}
		var hits []Secret
		for _, s := range r.Secrets {
			if hmac.Equal([]byte(s.Fingerprint), []byte(want)) {
				hits = append(hits, s)
			}
		}
		if len(hits) > 0 {
			r.Secrets = hits
			out = append(out, r)
		}
	}
}

package audit

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
)

type ref string

func (r ref) String() string { return string(r) }

const value = "the-leaked-api-key-9f2"

func start() inject.Event {
	src := &providers.Source{Provider: "vault", Ref: ref("secret/myapp")}
	return inject.Event{Kind: inject.EventStart, PID: 77, Secrets: &inject.Secrets{Vars: []inject.Variable{
		{Name: "API_KEY", Value: providers.NewSecret(value), Source: src, Version: "3"},
	}}}
}

type memSink struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	fail error
	hold chan struct{}
}

func (s *memSink) Write(b []byte) error {
	if s.hold != nil {
		<-s.hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.buf.Write(b)
	return nil
}
func (s *memSink) Close() error { return nil }

func TestRecordsHoldFingerprintsNotValues(t *testing.T) {
	sink := &memSink{}
	tr := NewTrail(sink, Record{Host: "h", Command: "./server"}, []byte("key"), nil)
	tr.Observe(start())
	// The start is written by the time Observe returns.
	if !strings.Contains(sink.buf.String(), `"event":"start"`) {
		t.Fatalf("the start record is not written when Observe returns: %q", sink.buf.String())
	}
	tr.Observe(inject.Event{Kind: inject.EventExit, Status: 3})
	tr.Close()
	out := sink.buf.String()
	if strings.Contains(out, value) {
		t.Fatal("a record holds the value")
	}
	if !strings.Contains(out, `"fingerprint":"`+Fingerprint([]byte("key"), value)+`"`) || !strings.Contains(out, `"status":3`) {
		t.Errorf("records: %s", out)
	}
	got, err := Match(strings.NewReader(out), []byte("key"), value)
	if err != nil || len(got) != 1 || got[0].Event != "start" || got[0].ChildPID != 77 || got[0].Secrets[0].Version != "3" {
		t.Errorf("Match: %+v, %v", got, err)
	}
	if got, _ := Match(strings.NewReader(out), []byte("other key"), value); len(got) != 0 {
		t.Errorf("Match under another key found %+v", got)
	}

	plain := &memSink{}
	tr = NewTrail(plain, Record{}, nil, nil)
	tr.Observe(start())
	tr.Close()
	if strings.Contains(plain.buf.String(), "fingerprint") {
		t.Errorf("without a key, a record has a fingerprint: %s", plain.buf.String())
	}
}

// TestFailingSinkWarnsOnceAndNeverBlocks: a stalled sink costs a start at
// most a second, and later events nothing.
func TestFailingSinkWarnsOnceAndNeverBlocks(t *testing.T) {
	var warnings []string
	var mu sync.Mutex
	warn := func(err error) { mu.Lock(); warnings = append(warnings, err.Error()); mu.Unlock() }
	stalled := &memSink{hold: make(chan struct{})}
	tr := NewTrail(stalled, Record{}, nil, warn)
	began := time.Now()
	tr.Observe(start())
	if took := time.Since(began); took > startWait+500*time.Millisecond {
		t.Errorf("a stalled sink held the start for %v", took)
	}
	began = time.Now()
	for range queueLen + 10 {
		tr.Observe(inject.Event{Kind: inject.EventRenew, Provider: "vault"})
	}
	if took := time.Since(began); took > 100*time.Millisecond {
		t.Errorf("events waited %v on a stalled sink", took)
	}
	close(stalled.hold)
	tr.Close()
	mu.Lock()
	if len(warnings) != 1 {
		t.Errorf("warnings: %q; want one", warnings)
	}
	warnings = nil
	mu.Unlock()

	broken := &memSink{fail: errors.New("disk full")}
	tr = NewTrail(broken, Record{}, nil, warn)
	for range 5 {
		tr.Observe(start())
	}
	tr.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "disk full") {
		t.Errorf("warnings: %q; want one naming the failure", warnings)
	}
}

func TestJournaldNativeFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.socket")
	journal, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	sink, err := openJournald(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if err := sink.Write([]byte(`{"event":"start","pid":12,"host":"a\nb"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, err := journal.ReadFromUnix(buf)
	if err != nil {
		t.Fatal(err)
	}
	fields := parseNative(t, buf[:n])
	want := map[string]string{
		"MESSAGE": `{"event":"start","pid":12,"host":"a\nb"}`, "SYSLOG_IDENTIFIER": "secretrun",
		"SECRETRUN_EVENT": "start", "SECRETRUN_PID": "12", "SECRETRUN_HOST": "a\nb",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("%s = %q, want %q", k, fields[k], v)
		}
	}
}

// parseNative reads journald's native protocol, length-prefixed values.
func parseNative(t *testing.T, b []byte) map[string]string {
	out := map[string]string{}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 || len(b) < i+9 {
			t.Fatalf("malformed datagram at %q", b)
		}
		name := string(b[:i])
		var l uint64
		for k := range 8 {
			l |= uint64(b[i+1+k]) << (8 * k)
		}
		start := i + 9
		out[name] = string(b[start : start+int(l)])
		b = b[start+int(l)+1:]
	}
	return out
}

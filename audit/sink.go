package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
)

// Sink takes one record at a time, a JSON object and a newline.
type Sink interface {
	Write(record []byte) error
	Close() error
}

// Open opens the sink that `audit.sink` names: stderr (the writer given),
// file:PATH (appended to, created 0600), syslog or journald.
func Open(spec string, stderr io.Writer) (Sink, error) {
	switch {
	case spec == "stderr":
		return &writerSink{w: stderr}, nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit.sink: %w", err)
		}
		return &writerSink{w: f, closer: f}, nil
	case spec == "syslog":
		return openSyslog()
	case spec == "journald":
		return openJournald(journaldSocket)
	}
	return nil, fmt.Errorf("audit.sink: unknown sink %q (one of stderr, file:PATH, syslog, journald)", spec)
}

// writerSink writes each record in one Write, so that records appended to
// one file by several processes do not interleave.
type writerSink struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
}

func (s *writerSink) Write(record []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(record)
	return err
}

func (s *writerSink) Close() error {
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

const journaldSocket = "/run/systemd/journal/socket"

// journaldSink sends each record to journald's native protocol, one
// datagram of KEY=VALUE fields: MESSAGE is the record as JSON, and each of
// the record's top-level scalars is a SECRETRUN_ field of its own, to
// filter on (journalctl SECRETRUN_EVENT=start).
type journaldSink struct {
	conn *net.UnixConn
	addr *net.UnixAddr
}

func openJournald(path string) (Sink, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("audit.sink journald: %w", err)
	}
	addr := &net.UnixAddr{Name: path, Net: "unixgram"}
	if _, err := os.Stat(path); err != nil {
		conn.Close()
		return nil, fmt.Errorf("audit.sink journald: %w", err)
	}
	return &journaldSink{conn: conn, addr: addr}, nil
}

func (s *journaldSink) Write(record []byte) error {
	_, err := s.conn.WriteToUnix(journaldFields(record), s.addr)
	return err
}

func (s *journaldSink) Close() error { return s.conn.Close() }

// journaldFields is one record in the native protocol. Values are written
// with their length, which the protocol allows for any value, so a newline
// in one cannot start a field of its own.
func journaldFields(record []byte) []byte {
	var b bytes.Buffer
	field := func(name, value string) {
		b.WriteString(name)
		b.WriteByte('\n')
		var n [8]byte
		l := uint64(len(value))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		b.Write(n[:])
		b.WriteString(value)
		b.WriteByte('\n')
	}
	msg := strings.TrimSuffix(string(record), "\n")
	field("MESSAGE", msg)
	field("SYSLOG_IDENTIFIER", "secretrun")
	var top map[string]any
	if json.Unmarshal(record, &top) == nil {
		keys := make([]string, 0, len(top))
		for k := range top {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch v := top[k].(type) {
			case string, float64, bool:
				field("SECRETRUN_"+strings.ToUpper(k), fmt.Sprint(v))
			}
		}
	}
	return b.Bytes()
}

//go:build unix

package audit

import (
	"fmt"
	"log/syslog"
	"strings"
)

type syslogSink struct{ w *syslog.Writer }

func openSyslog() (Sink, error) {
	w, err := syslog.New(syslog.LOG_AUTHPRIV|syslog.LOG_NOTICE, "secretrun")
	if err != nil {
		return nil, fmt.Errorf("audit.sink syslog: %w", err)
	}
	return &syslogSink{w: w}, nil
}

func (s *syslogSink) Write(record []byte) error {
	return s.w.Notice(strings.TrimSuffix(string(record), "\n"))
}

func (s *syslogSink) Close() error { return s.w.Close() }

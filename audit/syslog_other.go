//go:build !unix

package audit

import "errors"

func openSyslog() (Sink, error) {
	return nil, errors.New("audit.sink syslog: there is no syslog on this system; use file:PATH or stderr")
}

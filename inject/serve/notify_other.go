//go:build !unix

package serve

import (
	"context"
	"errors"
)

var errNoNotify = errors.New("ready.notify needs a Unix system (sd_notify sockets); use ready.http, ready.tcp or ready.delay")

// Notify is one child's notify socket; on this system there is none.
type Notify struct{}

// NewNotify fails: sd_notify needs Unix sockets.
func NewNotify() (*Notify, error) { return nil, errNoNotify }

// Env is empty: there is no socket.
func (n *Notify) Env() string { return "" }

// Ready returns a channel that is never closed.
func (n *Notify) Ready() <-chan struct{} { return nil }

// Close does nothing.
func (n *Notify) Close() error { return nil }

func (n *Notify) wait(context.Context) error { return errNoNotify }

package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultInterval is the time between two tries of an HTTP or TCP
	// check.
	DefaultInterval = 100 * time.Millisecond
	// attemptTimeout bounds one try, so that a child that accepts but
	// never answers is tried again rather than waited on for good.
	attemptTimeout = 2 * time.Second
)

// Check says when a new child counts as up. The configuration sets one of
// its conditions; when several are set, all must hold, checked in the
// order Delay, Notify, TCP, HTTP. The zero Check is ready at once: the
// caller chooses a default.
type Check struct {
	// HTTP is a path ("/healthz": GET http://127.0.0.1:PORT/healthz on the
	// child's own port) or a full http:// or https:// URL. A 2xx answer
	// means ready; any other status, a redirect included (redirects are
	// not followed), or no answer means not yet.
	HTTP string
	// TCP is "true" or "port" (the child's own port accepts a
	// connection), or a host:port that must accept one. A `listen:`
	// address proves nothing: secretrun holds that socket, so it accepts
	// before any child does.
	TCP string
	// Notify waits for READY=1 on the child's $NOTIFY_SOCKET (sd_notify).
	Notify bool
	// Delay just waits.
	Delay time.Duration
	// Interval is the time between tries of HTTP and TCP; zero means
	// DefaultInterval.
	Interval time.Duration
}

// Validate reports a check that can never succeed, without running it:
// a malformed URL or address, or a check of the child's own port when the
// child has none (hasPort is false outside proxy mode). Wait validates too.
func (c Check) Validate(hasPort bool) error {
	if c.HTTP != "" {
		if _, err := c.httpURL(1); err != nil {
			return err
		}
		if strings.HasPrefix(c.HTTP, "/") && !hasPort {
			return fmt.Errorf("ready.http %q: a path is checked on the child's own port, which only proxy mode gives; use a full URL", c.HTTP)
		}
	}
	if c.TCP != "" {
		if _, err := c.tcpAddr(1); err != nil {
			return err
		}
		if ownPort(c.TCP) && !hasPort {
			return fmt.Errorf("ready.tcp %q: the child's own port exists only in proxy mode; give host:port", c.TCP)
		}
	}
	if c.Delay < 0 {
		return fmt.Errorf("ready.delay %s: must not be negative", c.Delay)
	}
	return nil
}

func ownPort(tcp string) bool { return tcp == "true" || tcp == "port" }

func (c Check) httpURL(port int) (string, error) {
	if strings.HasPrefix(c.HTTP, "/") {
		return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + c.HTTP, nil
	}
	u, err := url.Parse(c.HTTP)
	if err != nil {
		return "", fmt.Errorf("ready.http %q: %w", c.HTTP, errors.Unwrap(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("ready.http %q: want a path such as /healthz or an http:// or https:// URL", c.HTTP)
	}
	return c.HTTP, nil
}

func (c Check) tcpAddr(port int) (string, error) {
	if ownPort(c.TCP) {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	host, p, err := net.SplitHostPort(c.TCP)
	if err != nil || host == "" || p == "" {
		return "", fmt.Errorf("ready.tcp %q: want true (the child's port) or host:port", c.TCP)
	}
	return c.TCP, nil
}

// Wait blocks until the child is ready, ctx ends (the caller's
// ready.timeout, or its cancelling the wait because the child exited), or
// the check turns out impossible. When ctx ends it returns an error that
// wraps ctx.Err() and context.Cause(ctx) and says what the check saw last
// ("GET http://127.0.0.1:PORT/healthz: 503 Service Unavailable"). port is
// the child's $PORT, zero when it has none; n is the child's notify
// socket, needed when Notify is set.
func (c Check) Wait(ctx context.Context, port int, n *Notify) error {
	if err := c.Validate(port != 0); err != nil {
		return err
	}
	if c.Notify && n == nil {
		return errors.New("ready.notify: the child has no notify socket")
	}
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	if c.Delay > 0 {
		t := time.NewTimer(c.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return notReady(ctx, fmt.Sprintf("waiting %s", c.Delay))
		}
	}
	if c.Notify {
		if err := n.wait(ctx); err != nil {
			return err
		}
	}
	if c.TCP != "" {
		addr, _ := c.tcpAddr(port)
		if err := poll(ctx, interval, func(ctx context.Context) (bool, string) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return false, err.Error()
			}
			conn.Close()
			return true, ""
		}); err != nil {
			return err
		}
	}
	if c.HTTP != "" {
		u, _ := c.httpURL(port)
		client := &http.Client{
			Transport: &http.Transport{
				// A proxy from the environment must not stand between
				// secretrun and its own child.
				Proxy:             nil,
				DisableKeepAlives: true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		if err := poll(ctx, interval, func(ctx context.Context) (bool, string) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return false, err.Error()
			}
			resp, err := client.Do(req)
			if err != nil {
				return false, err.Error()
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return true, ""
			}
			return false, "GET " + u + ": " + resp.Status
		}); err != nil {
			return err
		}
	}
	return nil
}

// poll tries try every interval until it succeeds or ctx ends.
func poll(ctx context.Context, interval time.Duration, try func(context.Context) (ok bool, saw string)) error {
	t := time.NewTimer(0)
	defer t.Stop()
	var last string
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return notReady(ctx, last)
		}
		attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
		ok, saw := try(attempt)
		cancel()
		if ok {
			return nil
		}
		if over(ctx) {
			// The try was most likely cut short by ctx's end, which says
			// less than what the try before it saw.
			if last == "" {
				last = saw
			}
			<-ctx.Done()
			return notReady(ctx, last)
		}
		last = saw
		t.Reset(interval)
	}
}

// over reports whether ctx has ended or reached its deadline: a dial cut
// by the deadline can return before ctx's own timer has fired.
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// notReady is the error for a wait whose ctx ended.
func notReady(ctx context.Context, last string) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	if last == "" {
		return fmt.Errorf("not ready: %w", err)
	}
	return fmt.Errorf("not ready: %w; last: %s", err, last)
}

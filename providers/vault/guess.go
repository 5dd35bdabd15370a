package vault

import (
	"context"
	"crypto/tls"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
)

// guess is a read of a path's KV v2 data made before its mount is known, on
// the likeliest guess: a KV v2 engine mounted at the path's first segment,
// as secret/ is on every dev server and in most deployments. It runs
// alongside the mount lookup, so that the first read under a KV v2 mount
// costs one round trip instead of two; its answer is used only when the
// lookup confirms the guess, and dropped otherwise. A wrong guess costs one
// request that reads nothing: a GET of <mount>/data/... on any other engine
// is a route that does not exist, or a KV v1 read of a key nobody wrote.
type guess struct {
	p      *provider
	c      *client
	mount  string // the guessed mount: "secret/"
	path   string // what it reads: "secret/data/myapp"
	params url.Values

	once   sync.Once
	cancel context.CancelFunc // set by start; nil when the guess never ran
	done   chan struct{}
	secret *secret
	err    error
}

// guessKV2 returns the guess for path, or nil when path has no segment
// below its first (a mount's own path is not a secret).
func (p *provider) guessKV2(c *client, path, version string) *guess {
	first, rest, _ := strings.Cut(path, "/")
	if first == "" || rest == "" {
		return nil
	}
	return &guess{
		p:      p,
		c:      c,
		mount:  first + "/",
		path:   first + "/data/" + rest,
		params: versionParams(version),
		done:   make(chan struct{}),
	}
}

// alongside returns the context to make the mount lookup with, and sees to
// it that the guess starts with the lookup. Over plain HTTP it starts at
// once, on a connection of its own. Over TLS it starts when the lookup has
// its connection, and only if that speaks HTTP/2: both then share one
// connection and one handshake. Over HTTP/1.1 with TLS a second handshake
// would cost as much time as the guess saves, so there is none.
func (g *guess) alongside(ctx context.Context, address string) context.Context {
	if g == nil {
		return ctx
	}
	if !strings.HasPrefix(address, "https://") {
		g.start(ctx)
		return ctx
	}
	readCtx := ctx
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			tc, ok := info.Conn.(interface{ ConnectionState() tls.ConnectionState })
			if ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
				g.start(readCtx)
			}
		},
	})
}

func (g *guess) start(ctx context.Context) {
	g.once.Do(func() {
		ctx, g.cancel = context.WithCancel(ctx)
		go func() {
			defer close(g.done)
			if err := g.p.acquire(ctx); err != nil {
				g.err = err
				return
			}
			g.secret, g.err = g.c.read(ctx, g.path, g.params)
			g.p.release()
		}()
	})
}

// answer returns what the guessed read got, if it ran and m, the mount the
// lookup found, is the one it guessed. Otherwise it stops the read and
// reports false: the caller reads as it would have without a guess.
func (g *guess) answer(m mountInfo) (ok bool, s *secret, err error) {
	if g == nil {
		return false, nil, nil
	}
	g.once.Do(func() {}) // a guess that has not started never will
	if g.cancel == nil {
		return false, nil, nil
	}
	right := m.kv == 2 && m.path == g.mount
	if !right {
		g.cancel()
	}
	<-g.done
	g.cancel()
	return right, g.secret, g.err
}

// discard stops the guess when the lookup failed.
func (g *guess) discard() { g.answer(mountInfo{}) }

package main

import (
	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/inject/serve"
)

// serveFor turns `listen:`, `proxy:` and `watch.ready:` into the engine's
// terms; nil when clients do not reach the child through secretrun.
func serveFor(p *config.Plan) *inject.Serve {
	if !p.Serve.Enabled() {
		return nil
	}
	r := p.Watch.Ready
	s := &inject.Serve{
		Ready:        serve.Check{HTTP: r.HTTP, TCP: r.TCP, Notify: r.Notify, Delay: r.Delay},
		ReadyTimeout: r.Timeout,
	}
	for _, l := range p.Serve.Listen {
		s.Listen = append(s.Listen, serve.ListenSpec{Network: l.Network, Address: l.Address, Name: l.Name})
	}
	if p.Serve.Proxy != nil {
		s.Proxy = p.Serve.Proxy.Listen
		if s.Ready == (serve.Check{}) {
			// Behind the proxy, a child is up once its port accepts.
			s.Ready.TCP = config.ReadyOnPort
		}
	}
	return s
}

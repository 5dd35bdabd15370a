package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
)

const serveBase = `version: 1
providers: {mem: {type: fake}}
environments: {dev: []}
`

func TestRollingWithProxy(t *testing.T) {
	p, err := planText(t, serveBase+`watch:
  on_change: rolling
  ready:
    http: /healthz
    timeout: 5s
proxy:
  listen: 127.0.0.1:8080
`, config.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Watch.OnChange != "rolling" || p.Watch.Ready.HTTP != "/healthz" || p.Watch.Ready.Timeout != 5*time.Second {
		t.Errorf("watch %+v", p.Watch)
	}
	if p.Serve.Proxy == nil || p.Serve.Proxy.Listen != "127.0.0.1:8080" || len(p.Serve.Listen) != 0 {
		t.Errorf("serve %+v", p.Serve)
	}
}

func TestRollingWithListen(t *testing.T) {
	p, err := planText(t, serveBase+`watch:
  on_change: rolling
  ready: {notify: true}
listen:
  - tcp: 127.0.0.1:8080
  - tcp: 0.0.0.0:9090
    name: metrics
`, config.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Listen{{Network: "tcp", Address: "127.0.0.1:8080"}, {Network: "tcp", Address: "0.0.0.0:9090", Name: "metrics"}}
	if len(p.Serve.Listen) != 2 || p.Serve.Listen[0] != want[0] || p.Serve.Listen[1] != want[1] {
		t.Errorf("listen %+v, want %+v", p.Serve.Listen, want)
	}
	if !p.Watch.Ready.Notify || p.Watch.Ready.Timeout != config.DefaultReadyTimeout {
		t.Errorf("ready %+v", p.Watch.Ready)
	}
}

func TestReadyForms(t *testing.T) {
	for _, tc := range []struct {
		ready string
		want  config.Ready
	}{
		{"{tcp: true}", config.Ready{TCP: config.ReadyOnPort, Timeout: config.DefaultReadyTimeout}},
		{"{tcp: 127.0.0.1:9000}", config.Ready{TCP: "127.0.0.1:9000", Timeout: config.DefaultReadyTimeout}},
		{"{http: http://127.0.0.1:9000/up}", config.Ready{HTTP: "http://127.0.0.1:9000/up", Timeout: config.DefaultReadyTimeout}},
		{"{delay: 2s, timeout: 1m}", config.Ready{Delay: 2 * time.Second, Timeout: time.Minute}},
	} {
		p, err := planText(t, serveBase+"watch:\n  on_change: rolling\n  ready: "+tc.ready+"\nproxy: {listen: 127.0.0.1:8080}\n", config.Selection{})
		if err != nil {
			t.Errorf("%s: %v", tc.ready, err)
			continue
		}
		if p.Watch.Ready != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.ready, p.Watch.Ready, tc.want)
		}
	}
}

func TestServeErrors(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string
	}{
		{"watch:\n  on_change: rolling\n", "secretrun.yaml:5:14: watch.on_change: rolling starts the new child before stopping the old, so clients need a way to reach both: add `listen:`"},
		{"watch:\n  on_change: rolling\nlisten:\n  - tcp: 127.0.0.1:8080\n", "secretrun.yaml:5:14: watch.ready: with `listen:` the old and the new child share the socket"},
		{"watch:\n  on_change: rolling\n  ready: {tcp: true}\nlisten:\n  - tcp: 127.0.0.1:8080\n", "secretrun.yaml:5:14: watch.ready: with `listen:`"},
		{"watch:\n  ready: {tcp: true}\n", "secretrun.yaml:5:16: watch.ready.tcp: true probes the child's own port, which only `proxy:` gives it"},
		{"watch:\n  ready: {http: /up}\n", "secretrun.yaml:5:17: watch.ready.http: a path probes the child's own port"},
		{"watch:\n  ready: {http: up}\n", `secretrun.yaml:5:17: watch.ready.http: "up" is neither a path`},
		{"watch:\n  ready: {http: /up, delay: 1s}\nproxy: {listen: 127.0.0.1:1}\n", "watch.ready: give one of http, tcp, notify and delay, not http and delay"},
		{"watch:\n  ready: {tcp: 8080}\n", "watch.ready.tcp: must be true (the child's own port, proxy mode) or host:port"},
		{"watch:\n  ready: {tcp: localhost}\n", `watch.ready.tcp: "localhost" is not host:port`},
		{"watch:\n  ready: {timeout: 0s}\n", "watch.ready.timeout: must be a positive duration"},
		{"watch:\n  ready: {notfy: true}\n", `watch.ready: unknown key "notfy"`},
		{"listen:\n  - tcp: 127.0.0.1:99999\n", `secretrun.yaml:5:10: listen[0].tcp: "127.0.0.1:99999": the port must be a number from 1 to 65535`},
		{"listen:\n  - tcp: :8080\n", `listen[0].tcp: ":8080": give the host too, such as 127.0.0.1:8080`},
		{"listen:\n  - name: web\n", "listen[0]: missing `tcp:` host:port"},
		{"listen:\n  - tcp: 127.0.0.1:1\n    name: a:b\n", `listen[0].name: "a:b": a name in LISTEN_FDNAMES is 1 to 255 letters`},
		{"listen:\n  - tcp: 127.0.0.1:1\n    name: " + strings.Repeat("n", 256) + "\n", `a name in LISTEN_FDNAMES is 1 to 255 letters`},
		{"listen:\n  - {tcp: 127.0.0.1:1, name: web}\n  - {tcp: 127.0.0.1:2, name: web}\n", `listen[1].name: "web" names two sockets`},
		{"listen:\n  - udp: 127.0.0.1:1\n", `listen[0]: unknown key "udp" (valid keys: name, tcp)`},
		{"listen: 127.0.0.1:8080\n", "listen: must be a list of sockets"},
		{"proxy: {}\n", "proxy: missing `listen:` host:port"},
		{"proxy: {listen: 127.0.0.1:8080}\nlisten:\n  - tcp: 127.0.0.1:8081\n", "give either `listen:` (sockets handed to the child) or `proxy:`"},
		{"watch:\n  on_change: roll\n", `watch.on_change: unknown action "roll" (one of restart, rolling, signal, exit, none)`},
	} {
		_, err := planText(t, serveBase+tc.text, config.Selection{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, tc.want)
		}
	}
}

// The same checks run offline, for `secretrun check`, in every environment.
func TestServeIsCheckedWithoutPlanning(t *testing.T) {
	_, err := config.Parse("secretrun.yaml", []byte(serveBase+"watch:\n  on_change: rolling\n"))
	if err == nil || !strings.Contains(err.Error(), "watch.on_change: rolling starts the new child") {
		t.Errorf("got %v", err)
	}
}

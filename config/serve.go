package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Serve is how clients reach the child across restarts: sockets secretrun
// opens once and hands to every child (`listen:`, systemd's socket
// activation protocol), or a proxy secretrun runs in front of the current
// child (`proxy:`). At most one of the two is set.
type Serve struct {
	Listen []Listen
	Proxy  *Proxy
}

// Enabled reports whether either mode is configured.
func (s Serve) Enabled() bool { return len(s.Listen) > 0 || s.Proxy != nil }

// Listen is one socket of `listen:`.
type Listen struct {
	// Network is "tcp".
	Network string
	// Address is host:port.
	Address string
	// Name is the socket's name in LISTEN_FDNAMES; empty for one named
	// after its address.
	Name string
}

// Proxy is `proxy:`: secretrun accepts on Listen and forwards each
// connection to the current child, which listens on the loopback port it
// is given in $PORT.
type Proxy struct {
	Listen string
}

// Ready is `watch.ready:`, when a new child counts as up during a rollout.
// At most one of HTTP, TCP, Notify and Delay is set.
type Ready struct {
	// HTTP is a path on the child's own port (proxy mode), or a full URL:
	// a 2xx answer to GET means ready.
	HTTP string
	// TCP is "port" for the child's own port (proxy mode), or host:port:
	// a connection accepted means ready.
	TCP string
	// Notify waits for READY=1 on $NOTIFY_SOCKET (sd_notify).
	Notify bool
	// Delay just waits.
	Delay time.Duration
	// Timeout bounds the wait; a child not ready by then is rolled back.
	Timeout time.Duration
}

// ReadyOnPort is Ready.TCP for the child's own port.
const ReadyOnPort = "port"

// DefaultReadyTimeout is ready.timeout when the config says nothing.
const DefaultReadyTimeout = 30 * time.Second

// readyYAML is `ready:` as written: tcp is true or host:port.
type readyYAML struct {
	HTTP    string        `yaml:"http"`
	TCP     any           `yaml:"tcp"`
	Notify  bool          `yaml:"notify"`
	Delay   time.Duration `yaml:"delay"`
	Timeout time.Duration `yaml:"timeout"`
}

type listenYAML struct {
	TCP  string `yaml:"tcp"`
	Name string `yaml:"name"`
}

type proxyYAML struct {
	Listen string `yaml:"listen"`
}

// validFDName reports whether name may go in LISTEN_FDNAMES: 1 to 255 of
// A-Z a-z 0-9 _ . -, with no colon (its separator) and no space, as
// systemd's FileDescriptorName= allows. A loop, not a regexp: the
// repetition count would compile into a program of 255 copies at every
// start.
func validFDName(name string) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// decodeReady reads `watch.ready:`; node is nil when it is absent.
func (d *document) decodeReady(node ast.Node) (Ready, error) {
	r := Ready{Timeout: DefaultReadyTimeout}
	if node == nil || isNull(node) {
		return r, nil
	}
	var raw readyYAML
	if err := decodeStrict(d.file, "watch.ready", node, &raw); err != nil {
		return r, err
	}
	m, _ := node.(*ast.MappingNode)
	at := func(key string) ast.Node {
		if m == nil {
			return node
		}
		return valueOf(m, key, node)
	}
	r.HTTP, r.Notify, r.Delay = raw.HTTP, raw.Notify, raw.Delay
	switch v := raw.TCP.(type) {
	case nil:
	case bool:
		if v {
			r.TCP = ReadyOnPort
		}
	case string:
		if err := checkHostPort(v); err != nil {
			return r, errorAt(d.file, at("tcp"), "watch.ready.tcp", "%v; write true for the child's own port (proxy mode), or host:port", err)
		}
		r.TCP = v
	default:
		return r, errorAt(d.file, at("tcp"), "watch.ready.tcp", "must be true (the child's own port, proxy mode) or host:port")
	}
	if r.HTTP != "" && !strings.HasPrefix(r.HTTP, "/") && !strings.HasPrefix(r.HTTP, "http://") && !strings.HasPrefix(r.HTTP, "https://") {
		return r, errorAt(d.file, at("http"), "watch.ready.http", "%q is neither a path (/healthz, on the child's own port) nor an http:// or https:// URL", r.HTTP)
	}
	var set []string
	for _, c := range []struct {
		key string
		on  bool
	}{{"http", r.HTTP != ""}, {"tcp", r.TCP != ""}, {"notify", r.Notify}, {"delay", r.Delay > 0}} {
		if c.on {
			set = append(set, c.key)
		}
	}
	if len(set) > 1 {
		return r, errorAt(d.file, at(set[1]), "watch.ready", "give one of http, tcp, notify and delay, not %s", strings.Join(set, " and "))
	}
	if r.Delay < 0 {
		return r, errorAt(d.file, at("delay"), "watch.ready.delay", "must not be negative")
	}
	if raw.Timeout < 0 || m != nil && valueOf(m, "timeout", nil) != nil && raw.Timeout == 0 {
		return r, errorAt(d.file, at("timeout"), "watch.ready.timeout", "must be a positive duration such as 30s")
	}
	if raw.Timeout > 0 {
		r.Timeout = raw.Timeout
	}
	return r, nil
}

// decodeServe reads `listen:` and `proxy:` and checks them against the
// watch settings: on_change: rolling needs one of them, and the readiness
// checks that probe the child's own port need the proxy.
func (d *document) decodeServe(w Watch) (Serve, error) {
	var s Serve
	if d.listen != nil && !isNull(d.listen) {
		seq, ok := d.listen.(*ast.SequenceNode)
		if !ok {
			return s, errorAt(d.file, d.listen, "listen", "must be a list of sockets, such as - tcp: 127.0.0.1:8080")
		}
		names := map[string]bool{}
		for i, item := range seq.Values {
			path := fmt.Sprintf("listen[%d]", i)
			var raw listenYAML
			if err := decodeStrict(d.file, path, item, &raw); err != nil {
				return s, err
			}
			m, _ := item.(*ast.MappingNode)
			at := func(key string) ast.Node {
				if m == nil {
					return item
				}
				return valueOf(m, key, item)
			}
			if raw.TCP == "" {
				return s, errorAt(d.file, item, path, "missing `tcp:` host:port, such as tcp: 127.0.0.1:8080")
			}
			if err := checkHostPort(raw.TCP); err != nil {
				return s, errorAt(d.file, at("tcp"), path+".tcp", "%v", err)
			}
			// Without a name the socket is named after its address.
			name := raw.Name
			if name != "" && !validFDName(name) {
				return s, errorAt(d.file, at("name"), path+".name", "%q: a name in LISTEN_FDNAMES is 1 to 255 letters, digits, _ . and - only", name)
			}
			if name != "" && names[name] {
				return s, errorAt(d.file, at("name"), path+".name", "%q names two sockets", name)
			}
			names[name] = true
			s.Listen = append(s.Listen, Listen{Network: "tcp", Address: raw.TCP, Name: name})
		}
	}
	if d.proxy != nil && !isNull(d.proxy) {
		var raw proxyYAML
		if err := decodeStrict(d.file, "proxy", d.proxy, &raw); err != nil {
			return s, err
		}
		at := d.proxy
		if m, ok := d.proxy.(*ast.MappingNode); ok {
			at = valueOf(m, "listen", d.proxy)
		}
		if raw.Listen == "" {
			return s, errorAt(d.file, d.proxy, "proxy", "missing `listen:` host:port, such as listen: 127.0.0.1:8080")
		}
		if err := checkHostPort(raw.Listen); err != nil {
			return s, errorAt(d.file, at, "proxy.listen", "%v", err)
		}
		s.Proxy = &Proxy{Listen: raw.Listen}
	}
	if len(s.Listen) > 0 && s.Proxy != nil {
		return s, errorAt(d.file, d.proxy, "proxy", "give either `listen:` (sockets handed to the child) or `proxy:` (secretrun forwards to the child), not both")
	}

	var watchMap *ast.MappingNode
	if m, ok := d.watch.(*ast.MappingNode); ok {
		watchMap = m
	}
	watchAt := func(key string) ast.Node {
		if watchMap == nil {
			return d.root
		}
		return valueOf(watchMap, key, watchMap)
	}
	if w.OnChange == "rolling" && !s.Enabled() {
		return s, errorAt(d.file, watchAt("on_change"), "watch.on_change",
			"rolling starts the new child before stopping the old, so clients need a way to reach both: add `listen:` (sockets handed to every child) or `proxy:` (secretrun forwards to the newest ready child)")
	}
	if w.OnChange == "rolling" && len(s.Listen) > 0 && !w.Ready.Notify && w.Ready.Delay == 0 && !strings.Contains(w.Ready.HTTP, "://") && (w.Ready.TCP == "" || w.Ready.TCP == ReadyOnPort) {
		return s, errorAt(d.file, watchAt("on_change"), "watch.ready",
			"with `listen:` the old and the new child share the socket, so secretrun cannot probe the new one there: set ready.notify: true (the child sends READY=1 on $NOTIFY_SOCKET) or ready.delay")
	}
	if s.Proxy == nil {
		readyAt := watchAt("ready")
		if m, ok := readyAt.(*ast.MappingNode); ok {
			if w.Ready.TCP == ReadyOnPort {
				return s, errorAt(d.file, valueOf(m, "tcp", m), "watch.ready.tcp", "true probes the child's own port, which only `proxy:` gives it; write host:port")
			}
			if strings.HasPrefix(w.Ready.HTTP, "/") {
				return s, errorAt(d.file, valueOf(m, "http", m), "watch.ready.http", "a path probes the child's own port, which only `proxy:` gives it; write a full URL")
			}
		}
	}
	return s, nil
}

// checkHostPort checks a host:port with a numeric port. One with a
// placeholder is checked once the placeholder is resolved, by Plan.
func checkHostPort(addr string) error {
	if strings.Contains(addr, "${") {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65535", addr)
	}
	if host == "" {
		return fmt.Errorf("%q: give the host too, such as 127.0.0.1:%s (0.0.0.0 for every address)", addr, port)
	}
	return nil
}

// cutKey splits key out of a mapping: the mapping without it, and its
// value (nil when absent). Anything but a mapping is returned as it is, for
// the strict decode to reject.
func cutKey(n ast.Node, key string) (ast.Node, ast.Node) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return n, nil
	}
	var rest []*ast.MappingValueNode
	var value ast.Node
	for _, kv := range m.Values {
		if kv.Key.String() == key {
			value = kv.Value
			continue
		}
		rest = append(rest, kv)
	}
	if value == nil {
		return n, nil
	}
	return ast.Mapping(m.Start, m.IsFlowStyle, rest...), value
}

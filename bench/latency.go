//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/providertest/faultproxy"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// Behind latency
//
// Each backend is reached through a faultproxy that holds every chunk of
// bytes for latencyOneWay in each direction, and a new connection's first
// bytes for a further round trip, the TCP handshake's. Every tool starts
// /bin/true with one secret of ten fields, once behind the proxy and once
// straight on loopback, in turns. The proxy counts the connections each run
// opens and logs what crossed when, from which the sequential round trips
// are counted (latencyRoundTrips); the servers count the requests.

const (
	groupLatency  = "latency"
	latencyOneWay = 10 * time.Millisecond
	latencyRounds = 11
	latencyFields = 10
)

// latencyBackend is one server behind a slow proxy, with the tools that
// read it, set up twice: through the proxy and straight to the server.
type latencyBackend struct {
	title string
	tls   bool
	proxy *faultproxy.Proxy
	// server is the "host:port" the tools reach straight.
	server string
	// requests returns the server's requests so far, by endpoint.
	requests     func() (map[string]int, error)
	slow, direct []peerTool // the same tools, in the same order
	vars, values []string
	stop         func()
}

type latencyRow struct {
	backend, tool string
	tls           bool
	slow, direct  sample
	// Per run behind the proxy.
	conns, requests, rounds []int
	// endpoints are the requests of one run behind the proxy.
	endpoints map[string]int
	missing   string
	note      string
}

type latencyResult struct {
	oneWay  time.Duration
	rounds  int
	commit  string
	rows    []latencyRow
	probes  *probeResult
	skipped []skip
}

func (h *harness) measureLatency(ctx context.Context) (*latencyResult, error) {
	res := &latencyResult{oneWay: latencyOneWay, rounds: latencyRounds, commit: h.commit(ctx)}
	if h.opts.smoke {
		res.rounds = 1
	}
	var backends []*latencyBackend
	defer func() {
		for _, b := range backends {
			b.stop()
		}
	}()
	for _, setup := range []struct {
		what string
		f    func(context.Context) (*latencyBackend, error)
	}{
		{"Vault over TLS", h.latencyVaultTLS},
		{"Vault over HTTP", h.latencyVaultHTTP},
		{"AWS Secrets Manager (moto)", h.latencyAWS},
		{"Infisical over TLS", h.latencyInfisical},
	} {
		h.logf("latency: setting up %s", setup.what)
		b, err := setup.f(ctx)
		if err != nil {
			res.skipped = append(res.skipped, skip{setup.what, err})
			continue
		}
		backends = append(backends, b)
	}

	type pair struct {
		b   *latencyBackend
		i   int
		row *latencyRow
	}
	var pairs []pair
	for _, b := range backends {
		// Checked behind the proxy and straight: only tools that deliver
		// every secret both ways are timed.
		slow := peerWork{name: b.title, vars: b.vars, values: b.values, tools: b.slow}
		direct := peerWork{name: b.title + ", straight", vars: b.vars, values: b.values, tools: b.direct}
		h.verifyPeers(ctx, &slow)
		h.verifyPeers(ctx, &direct)
		for i, t := range slow.tools {
			row := &latencyRow{backend: b.title, tool: t.name, tls: b.tls, missing: t.missing, note: t.note}
			if row.missing == "" {
				row.missing = direct.tools[i].missing
			}
			res.rows = append(res.rows, *row)
		}
	}
	k := 0
	for _, b := range backends {
		for i := range b.slow {
			if res.rows[k].missing == "" {
				pairs = append(pairs, pair{b, i, &res.rows[k]})
			}
			k++
		}
	}

	rng := rand.New(rand.NewPCG(10, uint64(time.Now().UnixNano())))
	warm := 1
	if h.opts.smoke {
		warm = 0
	}
	for round := range warm + res.rounds {
		h.logf("latency: round %d of %d", round+1, warm+res.rounds)
		for _, pi := range rng.Perm(len(pairs)) {
			p := pairs[pi]
			if p.row.missing != "" {
				continue
			}
			first := rng.IntN(2) == 0
			for _, slow := range []bool{first, !first} {
				if err := h.latencyRun(ctx, p.b, p.i, p.row, slow, round >= warm); err != nil {
					p.row.missing = "failed while timed: " + firstLine("", err)
					break
				}
			}
		}
	}

	h.logf("latency: credential-chain probes")
	res.probes = h.measureProbes(ctx, backends)
	return res, nil
}

// latencyRun runs one tool once, behind the proxy (slow) or straight, and
// keeps its figures when counted.
func (h *harness) latencyRun(ctx context.Context, b *latencyBackend, i int, row *latencyRow, slow, counted bool) error {
	t := b.direct[i]
	if slow {
		t = b.slow[i]
	}
	conns := b.proxy.Connections()
	before, err := b.requests()
	if err != nil {
		return err
	}
	start := time.Now()
	d, err := timeCommand(ctx, t.argv([]string{"/bin/true"}), t.env)
	end := time.Now()
	if err != nil {
		return err
	}
	if !counted {
		return nil
	}
	if !slow {
		row.direct = append(row.direct, d)
		return nil
	}
	after, err := b.requests()
	if err != nil {
		return err
	}
	reqs := diff(before, after)
	row.slow = append(row.slow, d)
	row.conns = append(row.conns, b.proxy.Connections()-conns)
	row.requests = append(row.requests, total(reqs))
	row.endpoints = reqs
	var chunks []faultproxy.Chunk
	for _, c := range b.proxy.Chunks() {
		if !c.Read.Before(start) {
			chunks = append(chunks, c)
		}
	}
	row.rounds = append(row.rounds, latencyRoundTrips(chunks, latencyOneWay, end))
	return nil
}

// latencyRoundTrips counts the sequential round trips in what a slow proxy
// logged during one run that ended at end. A message to the server is sent
// in round n+1 when the highest round answered before it was n; a message
// from the server answers the last message to the server on its connection
// sent at least a round trip before it arrived, so that bytes that merely
// cross (an HTTP/2 SETTINGS acknowledgement and a response) are not taken
// for question and answer. The count is the highest round answered before
// the run ended: what a client sends last and waits no answer for (a TLS
// close_notify, an acknowledgement) is no round trip. A connection's
// opening is sent at once and answered a round trip later, as a TCP
// handshake is.
//
// Times are where the client stands: bytes to the server left it one way
// before the proxy wrote them on, bytes from the server reach it when the
// proxy writes them.
func latencyRoundTrips(chunks []faultproxy.Chunk, oneWay time.Duration, end time.Time) int {
	type event struct {
		at   time.Time
		conn int
		send bool
	}
	var events []event
	for _, c := range chunks {
		switch {
		case c.ToServer && c.Bytes == 0:
			events = append(events, event{c.Read, c.Conn, true}, event{c.Read.Add(2 * oneWay), c.Conn, false})
		case c.Sent.IsZero():
			// never written: lost in a fault
		case c.ToServer:
			events = append(events, event{c.Sent.Add(-oneWay), c.Conn, true})
		default:
			events = append(events, event{c.Sent, c.Conn, false})
		}
	}
	sort.SliceStable(events, func(i, j int) bool {
		if events[i].at.Equal(events[j].at) {
			return !events[i].send && events[j].send // an answer may cause a send at the same instant
		}
		return events[i].at.Before(events[j].at)
	})
	type sent struct {
		at    time.Time
		round int
	}
	sends := map[int][]sent{}
	answered := 0
	for _, e := range events {
		if e.at.After(end) {
			break
		}
		if e.send {
			sends[e.conn] = append(sends[e.conn], sent{e.at, answered + 1})
			continue
		}
		asked := e.at.Add(-2 * oneWay)
		ss := sends[e.conn]
		for i := len(ss) - 1; i >= 0; i-- {
			if !ss[i].at.After(asked) {
				answered = max(answered, ss[i].round)
				break
			}
		}
	}
	return answered
}

// commit names the tree that was measured: HEAD, and whether files outside
// bench/ differed from it.
func (h *harness) commit(ctx context.Context) string {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = h.root
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	head, err := git("rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	if dirty, err := git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench", ":(exclude)BENCHMARKS.md"); err == nil && dirty != "" {
		head += " with uncommitted changes"
	}
	return head
}

// slowProxy starts a faultproxy with latency in front of target
// ("host:port").
func slowProxy(target string) (*faultproxy.Proxy, error) {
	p, err := faultproxy.New(target)
	if err != nil {
		return nil, err
	}
	p.SetLatency(latencyOneWay)
	return p, nil
}

func hostPort(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

// latencyVaultTLS starts a Vault dev server of its own with -dev-tls, and
// counts its requests from a file audit device: a proxy that sees only TLS
// records cannot.
func (h *harness) latencyVaultTLS(ctx context.Context) (*latencyBackend, error) {
	v, stop, err := vaulttest.StartVaultTLS()
	if err != nil {
		return nil, err
	}
	audit := filepath.Join(h.dir, "vault-tls-audit.log")
	if err := v.Root.Sys().EnableAuditWithOptionsWithContext(ctx, "file", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": audit},
	}); err != nil {
		stop()
		return nil, fmt.Errorf("enable the audit log: %w", err)
	}
	log := &auditLog{path: audit, counts: map[string]int{}}
	b, err := h.latencyVault(ctx, v, "Vault KV v2 (`vault server -dev-tls`)", true, log.read)
	if err != nil {
		stop()
		return nil, err
	}
	inner := b.stop
	b.stop = func() { inner(); stop() }
	return b, nil
}

// latencyVaultHTTP puts the shared Vault dev server, through its counting
// proxy, behind the slow proxy: the same work without TLS.
func (h *harness) latencyVaultHTTP(ctx context.Context) (*latencyBackend, error) {
	v, err := h.vaultServer()
	if err != nil {
		return nil, err
	}
	counted := &vaulttest.Vault{Addr: v.proxy.url, Root: v.Root}
	return h.latencyVault(ctx, counted, "Vault KV v2 (`vault server -dev`, HTTP)", false,
		func() (map[string]int, error) { return v.proxy.counts(), nil })
}

func (h *harness) latencyVault(ctx context.Context, v *vaulttest.Vault, title string, tls bool, requests func() (map[string]int, error)) (*latencyBackend, error) {
	const path = "bench/latency/1x10"
	fields := map[string]any{}
	var vars, values []string
	for _, f := range fieldNames(latencyFields) {
		val := randomValue()
		fields[f] = val
		vars, values = append(vars, f), append(values, val)
	}
	if _, err := v.Root.KVv2("secret").Put(ctx, path, fields); err != nil {
		return nil, fmt.Errorf("seeding %s: %w", path, err)
	}
	target, err := hostPort(v.Addr)
	if err != nil {
		return nil, err
	}
	proxy, err := slowProxy(target)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	b := &latencyBackend{title: title, tls: tls, proxy: proxy, server: target, requests: requests, vars: vars, values: values,
		stop: func() { proxy.Close() }}
	tokenFile := filepath.Join(h.dir, "latency-agent-token")
	if err := os.WriteFile(tokenFile, []byte(vaulttest.RootToken), 0o600); err != nil {
		return nil, err
	}
	agentBin, agentErr := h.installedVault()
	sstartBin, sstartMissing := h.peerBinary("sstart")
	for _, way := range []struct {
		name string
		addr string
		list *[]peerTool
	}{{"slow", scheme + "://" + proxy.Addr(), &b.slow}, {"direct", v.Addr, &b.direct}} {
		slug := fmt.Sprintf("latency-vault-%s-%s", scheme, way.name)
		env := append(baseEnv(), "VAULT_TOKEN="+vaulttest.RootToken, "VAULT_ADDR="+way.addr)
		if v.CACert != "" {
			env = append(env, "VAULT_CACERT="+v.CACert)
		}
		sr, err := h.writeConfig(slug+"-secretrun", fmt.Sprintf("version: 1\nproviders:\n  vault:\n    type: vault\n    address: %s\nenvironments:\n  bench:\n    - from: vault\n      path: secret/%s\n", way.addr, path))
		if err != nil {
			return nil, err
		}
		tools := []peerTool{h.secretrunTool(sr, "", env)}
		st := peerTool{name: toolSstart, missing: sstartMissing}
		if sstartMissing == "" {
			cfg, err := h.writeConfig(slug+"-sstart", fmt.Sprintf("inherit: true\nproviders:\n  - kind: vault\n    id: vault\n    address: %s\n    mount: secret\n    path: %s\n", way.addr, path))
			if err != nil {
				return nil, err
			}
			st = sstartTool(sstartBin, cfg, env)
		}
		at := peerTool{name: toolAgent}
		if agentErr != nil {
			at.missing = "no Vault binary: " + agentErr.Error()
		} else {
			var templates []agentTemplate
			for _, f := range vars {
				templates = append(templates, agentTemplate{env: f, path: "secret/data/" + path, field: f})
			}
			dir := filepath.Join(h.dir, slug+"-agent")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			if at, err = agentTool(agentBin, dir, way.addr, tokenFile, templates, vars); err != nil {
				return nil, err
			}
			if v.CACert != "" {
				at.env = append(at.env, "VAULT_CACERT="+v.CACert)
			}
		}
		*way.list = append(tools, st, at)
	}
	return b, nil
}

// auditLog counts the requests in a Vault file audit log, read on from
// where it was last read.
type auditLog struct {
	path   string
	offset int64
	counts map[string]int
}

func (a *auditLog) read() (map[string]int, error) {
	f, err := os.Open(a.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(a.offset, 0); err != nil {
		return nil, err
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			// A line without its newline yet is read again next time.
			break
		}
		a.offset += int64(len(line))
		var entry struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(line, &entry) != nil || entry.Type != "request" {
			continue
		}
		method := map[string]string{"read": "GET", "list": "LIST", "update": "PUT", "create": "POST", "delete": "DELETE"}[entry.Request.Operation]
		if method == "" {
			method = entry.Request.Operation
		}
		a.counts[vaultEndpoint(&http.Request{Method: method, URL: &url.URL{Path: "/v1/" + entry.Request.Path}})]++
	}
	out := make(map[string]int, len(a.counts))
	for k, n := range a.counts {
		out[k] = n
	}
	return out, nil
}

// latencyAWS puts moto, through its counting proxy, behind the slow proxy.
// moto speaks plain HTTP here.
func (h *harness) latencyAWS(ctx context.Context) (*latencyBackend, error) {
	m, err := h.motoServer()
	if err != nil {
		return nil, err
	}
	const name = "bench/latency/sm1x10"
	values := map[string]any{}
	var vars, vals []string
	for _, f := range fieldNames(latencyFields) {
		v := randomValue()
		values[f] = v
		vars, vals = append(vars, f), append(vals, v)
	}
	if _, err := m.Client().CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(jsonObject(values)),
	}); err != nil {
		return nil, fmt.Errorf("seeding %s: %w", name, err)
	}
	target, err := hostPort(m.proxy.url)
	if err != nil {
		return nil, err
	}
	proxy, err := slowProxy(target)
	if err != nil {
		return nil, err
	}
	b := &latencyBackend{title: "AWS Secrets Manager (moto, HTTP)", proxy: proxy, server: target, vars: vars, values: vals,
		requests: func() (map[string]int, error) { return m.proxy.counts(), nil },
		stop:     func() { proxy.Close() }}
	sstartBin, sstartMissing := h.peerBinary("sstart")
	chamberBin, chamberMissing := h.peerBinary("chamber")
	for _, way := range []struct {
		name     string
		endpoint string
		list     *[]peerTool
	}{{"slow", "http://" + proxy.Addr(), &b.slow}, {"direct", m.proxy.url, &b.direct}} {
		slug := "latency-aws-" + way.name
		env := awsToolEnv(way.endpoint)
		sr, err := h.writeConfig(slug+"-secretrun", fmt.Sprintf("version: 1\nproviders:\n  aws:\n    type: aws-secrets-manager\n    region: %s\nenvironments:\n  bench:\n    - from: aws\n      secret: %s\n", mototest.Region, name))
		if err != nil {
			return nil, err
		}
		st := peerTool{name: toolSstart, missing: sstartMissing}
		if sstartMissing == "" {
			cfg, err := h.writeConfig(slug+"-sstart", fmt.Sprintf("inherit: true\nproviders:\n  - kind: aws_secretsmanager\n    id: aws\n    secret_id: %s\n    region: %s\n    endpoint: %s\n", name, mototest.Region, way.endpoint))
			if err != nil {
				return nil, err
			}
			st = sstartTool(sstartBin, cfg, env)
		}
		*way.list = []peerTool{
			h.secretrunTool(sr, "", env),
			st,
			chamberTool(chamberBin, chamberMissing, name, append(env, "CHAMBER_SECRET_BACKEND=secretsmanager"), "Secrets Manager backend"),
		}
	}
	return b, nil
}

// latencyInfisical serves the shared Infisical test server's handler over
// TLS (with HTTP/2, as Infisical's cloud does) and puts that behind the
// slow proxy. Every tool logs in with universal auth, then lists.
func (h *harness) latencyInfisical(context.Context) (*latencyBackend, error) {
	s, err := h.infisicalServer()
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	ca := filepath.Join(h.dir, "infisical-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		srv.Close()
		return nil, err
	}
	proxy, err := slowProxy(srv.Listener.Addr().String())
	if err != nil {
		srv.Close()
		return nil, err
	}
	const path = "/latency-1x10"
	clientID, clientSecret := "latency-client", randomValue()
	s.AddIdentity(clientID, clientSecret, infisicalProject)
	var vars, values []string
	for _, f := range fieldNames(latencyFields) {
		v := randomValue()
		s.SetSecret(infisicalProject, infisicalEnv, path, f, v)
		vars, values = append(vars, f), append(values, v)
	}
	b := &latencyBackend{title: "Infisical (test server over TLS)", tls: true, proxy: proxy, server: srv.Listener.Addr().String(), vars: vars, values: values,
		requests: func() (map[string]int, error) { return s.Counts(), nil },
		stop:     func() { proxy.Close(); srv.Close() }}
	sstartBin, sstartMissing := h.peerBinary("sstart")
	for _, way := range []struct {
		name string
		url  string
		list *[]peerTool
	}{{"slow", "https://" + proxy.Addr(), &b.slow}, {"direct", srv.URL, &b.direct}} {
		slug := "latency-infisical-" + way.name
		// Go reads SSL_CERT_FILE for its roots: the one way to hand the
		// test server's CA to every tool.
		env := append(baseEnv(),
			"INFISICAL_UNIVERSAL_AUTH_CLIENT_ID="+clientID,
			"INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET="+clientSecret,
			"INFISICAL_SITE_URL="+way.url,
			"SSL_CERT_FILE="+ca,
		)
		sr, err := h.writeConfig(slug+"-secretrun", fmt.Sprintf("version: 1\nproviders:\n  infisical:\n    type: infisical\n    site_url: %s\n    project_id: %s\nenvironments:\n  bench:\n    - from: infisical\n      environment: %s\n      path: %s\n", way.url, infisicalProject, infisicalEnv, path))
		if err != nil {
			return nil, err
		}
		st := peerTool{name: toolSstart, missing: sstartMissing}
		if sstartMissing == "" {
			cfg, err := h.writeConfig(slug+"-sstart", fmt.Sprintf("inherit: true\nproviders:\n  - kind: infisical\n    id: infisical\n    project_id: %s\n    environment: %s\n    path: %s\n", infisicalProject, infisicalEnv, path))
			if err != nil {
				return nil, err
			}
			st = sstartTool(sstartBin, cfg, env)
		}
		*way.list = []peerTool{h.secretrunTool(sr, "", env), st}
	}
	return b, nil
}

// medianInt is the median of counts that should not vary between runs,
// with their range when they do: "3" or "3 (2–4)".
func medianInt(xs []int) string {
	if len(xs) == 0 {
		return "–"
	}
	s := append([]int(nil), xs...)
	sort.Ints(s)
	m := fmt.Sprint(s[len(s)/2])
	if s[0] != s[len(s)-1] {
		m += fmt.Sprintf(" (%d–%d)", s[0], s[len(s)-1])
	}
	return m
}

func (r *report) latencySection(p func(string, ...any)) {
	lr := r.latency
	if lr == nil {
		return
	}
	rt := 2 * lr.oneWay
	d := func(x time.Duration) string { return fmt.Sprintf("%d ms", x.Milliseconds()) }
	p("## Behind %s of latency\n\n", d(lr.oneWay))
	p("Each backend behind a proxy (`providertest/faultproxy` with `SetLatency`) that holds every chunk of bytes for\n")
	p("%s in each direction, and a new connection's first bytes for one more round trip (%s), the TCP handshake the\n", d(lr.oneWay), d(rt))
	p("proxy cannot delay: the kernel completes the handshake with it at once. Vault runs with `-dev-tls` (and, for\n")
	p("comparison, over plain HTTP), the Infisical test server's handler is served over TLS with HTTP/2; moto speaks\n")
	p("HTTP. Every tool starts `/bin/true` with one secret of %d fields, %d %s, in a new random order each round,\n", latencyFields, lr.rounds, plural(lr.rounds, "round"))
	p("once behind the proxy and once straight on loopback (medians). *Connections* are the connections the proxy\n")
	p("accepted during a run: over TLS each is a full handshake. *Requests* are counted by the servers (Vault over TLS by\n")
	p("its file audit device, which does not log `sys/health`; moto and Vault over HTTP by a counting proxy; the Infisical\n")
	p("test server by itself). *Round trips* are counted from the proxy's log of what crossed when: a message to the\n")
	p("server belongs to round n+1 when the highest round answered before it left was n, and a message back answers the\n")
	p("last one sent on its connection at least a round trip (%s) earlier; the count is the highest round answered\n", d(rt))
	p("before the tool exited, so messages that run side by side count once, and a connection's TCP handshake and a\n")
	p("TLS handshake count as one round each. *÷ %s* is the same from the wall times alone: (behind − loopback) ÷ %s.\n", d(rt), d(rt))
	p("Measured tree: %s.\n\n", lr.commit)
	p("| backend | tool | behind latency | on loopback | round trips | ÷ %s | connections | requests | ratio to secretrun |\n", d(rt))
	p("|---|---|---:|---:|---:|---:|---:|---|---:|\n")
	var self time.Duration
	for _, row := range lr.rows {
		if row.tool == toolSecretrun {
			self = 0
			if row.missing == "" {
				self = row.slow.median()
			}
		}
		if row.missing != "" {
			p("| %s | %s | not measured: %s | | | | | | |\n", row.backend, row.tool, strings.ReplaceAll(row.missing, "|", "\\|"))
			continue
		}
		slow, direct := row.slow.median(), row.direct.median()
		conns := medianInt(row.conns)
		if row.tls {
			conns += " TLS"
		}
		p("| %s | %s | %s | %s | %s | %.1f | %s | %s | %s |\n", row.backend, row.tool, ms(slow), ms(direct),
			medianInt(row.rounds), float64(slow-direct)/float64(rt), conns, requestList(row.endpoints), ratio(slow, self))
	}
	p("\n")
	for _, row := range lr.rows {
		if row.note != "" && row.missing == "" {
			p("- %s, %s: %s.\n", row.backend, row.tool, row.note)
		}
	}
	p("\n")
	for _, s := range lr.skipped {
		p("Not measured: %s: %v.\n\n", s.what, s.err)
	}
	lr.probes.markdown(p)
}

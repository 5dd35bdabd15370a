//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
)

// Credential-chain probes
//
// With credentials given in the environment, secretrun must not look for
// others: no connection to the instance metadata service, no read of the
// SSO token cache or of ~/.vault-token. Each backend's start-up runs once
// under strace, in a home that has all of those files, with the metadata
// endpoint pointed at a loopback listener that counts who knocks: a probe
// then shows without anything leaving the machine.

// probeHomeFiles are what a developer's home may hold; their contents are
// never valid credentials.
var probeHomeFiles = map[string]string{
	".aws/config": "[default]\nregion = eu-west-1\nsso_session = bench\nsso_account_id = 123456789012\nsso_role_name = bench\n\n" +
		"[sso-session bench]\nsso_start_url = http://127.0.0.1:9/start\nsso_region = eu-west-1\n",
	".aws/credentials":          "[default]\naws_access_key_id = AKIDPROBEPROBEPROBE00\naws_secret_access_key = probe-not-a-real-key\n",
	".aws/sso/cache/bench.json": `{"startUrl": "http://127.0.0.1:9/start", "region": "eu-west-1", "accessToken": "probe", "expiresAt": "2099-01-01T00:00:00Z"}` + "\n",
	".vault-token":              "probe-not-a-token\n",
}

type probeRow struct {
	backend string
	// control is a run without the backend's credentials in the
	// environment: it must show the fallback being read, or the trace
	// would prove nothing.
	control  bool
	connects []string
	files    []string
	metadata int // connections to the metadata stand-in
	missing  string
}

type probeResult struct {
	rows    []probeRow
	missing string
}

func (h *harness) measureProbes(ctx context.Context, backends []*latencyBackend) *probeResult {
	res := &probeResult{}
	strace, err := exec.LookPath("strace")
	if err != nil {
		res.missing = "strace is not installed (scripts/test installs it)"
		return res
	}
	home := filepath.Join(h.dir, "probe-home")
	for name, text := range probeHomeFiles {
		p := filepath.Join(home, name)
		err := os.MkdirAll(filepath.Dir(p), 0o700)
		if err == nil {
			err = os.WriteFile(p, []byte(text), 0o600)
		}
		if err != nil {
			res.missing = err.Error()
			return res
		}
	}
	trap, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		res.missing = err.Error()
		return res
	}
	defer trap.Close()
	var knocks atomic.Int64
	go func() {
		for {
			c, err := trap.Accept()
			if err != nil {
				return
			}
			knocks.Add(1)
			c.Close()
		}
	}()
	labels := map[string]string{trap.Addr().String(): "instance metadata stand-in"}
	for _, b := range backends {
		labels[b.server] = "the backend"
	}
	type run struct {
		b       *latencyBackend
		control bool
	}
	var runs []run
	for _, b := range backends {
		runs = append(runs, run{b, false})
	}
	// Vault's control: without VAULT_TOKEN, secretrun falls back to
	// ~/.vault-token (whose token the server then refuses).
	for _, b := range backends {
		if strings.HasPrefix(b.title, "Vault") && !b.tls {
			runs = append(runs, run{b, true})
		}
	}
	for i, r := range runs {
		b := r.b
		row := probeRow{backend: b.title, control: r.control}
		t := b.direct[0]
		if t.name != toolSecretrun || t.missing != "" {
			row.missing = "secretrun not measured"
			res.rows = append(res.rows, row)
			continue
		}
		var env []string
		for _, kv := range t.env {
			k, _, _ := strings.Cut(kv, "=")
			switch k {
			case "HOME", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED":
				continue
			case "VAULT_TOKEN":
				if r.control {
					continue
				}
			}
			env = append(env, kv)
		}
		env = append(env, "HOME="+home, "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://"+trap.Addr().String()+"/")
		out := filepath.Join(h.dir, fmt.Sprintf("strace-%d.log", i))
		before := knocks.Load()
		argv := append([]string{strace, "-f", "-qq", "-o", out, "-e", "trace=connect,%file"}, t.argv([]string{"/bin/true"})...)
		if _, err := timeCommand(ctx, argv, env); err != nil && !r.control {
			row.missing = firstLine("", err)
			res.rows = append(res.rows, row)
			continue
		}
		row.metadata = int(knocks.Load() - before)
		trace, err := os.ReadFile(out)
		if err != nil {
			row.missing = err.Error()
			res.rows = append(res.rows, row)
			continue
		}
		row.connects, row.files = parseStrace(string(trace), home, labels)
		res.rows = append(res.rows, row)
	}
	return res
}

var (
	straceInet  = regexp.MustCompile(`connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\),.*?inet_(?:addr\("([^"]+)"\)|pton\(AF_INET6, "([^"]+)")`)
	straceUnix  = regexp.MustCompile(`connect\(\d+, \{sa_family=AF_UNIX, sun_path=(@?"[^"]*")`)
	straceQuote = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	straceCall  = regexp.MustCompile(`^\d+\s+([a-z0-9_]+)\(`)
	straceRet   = regexp.MustCompile(`= (-?\d+)(?: (E[A-Z]+))?`)
)

// parseStrace lists the distinct connect() destinations of a trace and
// the calls that named a file in home, with their outcome.
func parseStrace(trace, home string, labels map[string]string) (connects, files []string) {
	seenC, seenF := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(trace, "\n") {
		var dest string
		if m := straceInet.FindStringSubmatch(line); m != nil {
			ip := m[2] + m[3]
			dest = net.JoinHostPort(ip, m[1])
			if l, ok := labels[dest]; ok {
				dest += " (" + l + ")"
			} else if a := net.ParseIP(ip); a != nil && !a.IsLoopback() {
				dest += " (**not loopback**)"
			}
		} else if m := straceUnix.FindStringSubmatch(line); m != nil {
			dest = "unix " + m[1]
			if m[1] == `"/var/run/nscd/socket"` {
				dest += " (glibc's user lookup, e.g. `user.Current`)"
			}
		}
		if dest != "" && !seenC[dest] {
			seenC[dest] = true
			connects = append(connects, dest)
		}
		call := straceCall.FindStringSubmatch(line)
		if call == nil || call[1] == "connect" {
			continue
		}
		for _, q := range straceQuote.FindAllStringSubmatch(line, -1) {
			if !strings.HasPrefix(q[1], home) {
				continue
			}
			outcome := "found"
			if r := straceRet.FindStringSubmatch(line); r != nil && r[2] != "" {
				outcome = r[2]
			}
			f := fmt.Sprintf("`%s` ~%s (%s)", call[1], strings.TrimPrefix(q[1], home), outcome)
			if !seenF[f] {
				seenF[f] = true
				files = append(files, f)
			}
		}
	}
	sort.Strings(connects)
	return connects, files
}

func (pr *probeResult) markdown(p func(string, ...any)) {
	if pr == nil {
		return
	}
	p("### Credential-chain probes\n\n")
	p("With credentials in the environment (static AWS keys and region, `VAULT_TOKEN`, Infisical's client ID and\n")
	p("secret), secretrun's start-up ran once per backend under `strace -f -e trace=connect,%%file`, in a home holding\n")
	p("`~/.aws/config` with an SSO profile as default, `~/.aws/credentials`, a token in `~/.aws/sso/cache` and\n")
	p("`~/.vault-token`, and with `AWS_EC2_METADATA_SERVICE_ENDPOINT` pointed at a loopback listener that counts\n")
	p("connections, so that a metadata probe would show without leaving the machine. The control row runs without\n")
	p("`VAULT_TOKEN`: secretrun then reads `~/.vault-token`, which shows that the trace would catch such a read.\n\n")
	if pr.missing != "" {
		p("Not measured: %s.\n\n", pr.missing)
		return
	}
	p("| backend | connect() destinations | files under ~ opened or looked up | metadata stand-in connections |\n|---|---|---|---:|\n")
	for _, r := range pr.rows {
		if r.missing != "" {
			p("| %s | not measured: %s | | |\n", r.backend, r.missing)
			continue
		}
		files := "none"
		if len(r.files) > 0 {
			files = strings.Join(r.files, ", ")
		}
		name := r.backend
		if r.control {
			name += ", control: no `VAULT_TOKEN`"
		}
		p("| %s | %s | %s | %d |\n", name, strings.Join(r.connects, ", "), files, r.metadata)
	}
	p("\n")
}

//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// groupPeers measures secretrun side by side with the tools it is compared
// with, in one interleaved run.
const groupPeers = "peers"

// Tool names, as the report prints them.
const (
	toolSecretrun = "secretrun"
	toolSstart    = "sstart"
	toolChamber   = "chamber"
	toolAgent     = "Vault Agent"

	toolEmptyGo         = "an empty Go program"
	toolEmptyHTTP       = "an empty Go program importing `net/http`"
	toolEmptyHTTPStatic = "the same built with `CGO_ENABLED=0`"
	toolAWSFloor        = "the least a Go program can do (`bench/awsfloor`)"
)

// awsFloorSource is built outside the module, as `go install` builds a
// tool, and timed beside the AWS rows' tools as their floor.
//
//go:embed awsfloor/main.go
var awsFloorSource string

// The peers' versions, as scripts/install-peers.sh installs them.
const (
	chamberVersion = "v2.14.1"
	sstartVersion  = "v0.0.11"
)

const (
	// peerRounds is how many times every tool runs each work, in turns.
	peerRounds = 21
	// peerRSSInterval is the watch interval of the supervising figures.
	peerRSSInterval = time.Second
	// flatInterval is the watch interval of the memory-over-time figure:
	// short, so that a thousand polls take seconds.
	flatInterval = 10 * time.Millisecond
)

// peerTool is one tool's way of doing one work.
type peerTool struct {
	name string
	// argv runs the tool once, starting child with the secrets.
	argv func(child []string) []string
	// supervise, when not nil, runs the tool so that it stays the child's
	// parent and refreshes the secrets (or, without a refresh, only
	// supervises).
	supervise func(child []string) []string
	// superviseHow says how supervise runs the tool.
	superviseHow string
	env          []string
	// missing, when set, is why the tool does not do this work.
	missing string
	// failed says the tool was run and did not deliver: missing says how.
	failed bool
	note   string
	// reference marks a program timed beside the peers as their floor:
	// it is no peer, and never the best one.
	reference bool
}

// peerWork is one row of the comparison: the same secrets read by each
// tool that can read them.
type peerWork struct {
	name string
	// goal is the ratio to the best peer that secretrun must not exceed;
	// 0 for none.
	goal float64
	// vars and values are what every tool must put in the child's
	// environment.
	vars   []string
	values []string
	tools  []peerTool // tools[0] is secretrun
	// version is the row of programs that contact nothing: no secrets
	// are checked, and the reference is an empty Go program.
	version bool
	rss     bool // also measure memory while supervising
}

type peerResult struct {
	tool      string
	s         sample
	missing   string
	failed    bool
	note      string
	reference bool
}

type peerRow struct {
	work    string
	goal    float64
	version bool
	results []peerResult
}

// peerRSSRow is one tool's memory while supervising one work's secrets.
type peerRSSRow struct {
	work, tool, how string
	hwm, rss        int // KiB
	missing         string
}

// rssPoint is secretrun's memory after some polls of a running watch loop.
type rssPoint struct {
	polls    int
	hwm, rss int // KiB
	after    time.Duration
	// gcs and liveMB are from the Go runtime's trace: how many
	// collections have run, and the heap that the last one left live.
	gcs    int
	liveMB int
}

type peersResult struct {
	rounds int
	rows   []peerRow
	rss    []peerRSSRow
	// rssWait is how long after the child's start memory was read.
	rssWait time.Duration
	flat    []rssPoint
	flatErr string
	skipped []skip
}

// peersDir is where scripts/install-peers.sh put chamber and sstart.
func peersDir() string {
	if d := os.Getenv("SECRETRUN_PEERS_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("SECRETRUN_CACHE"); d != "" {
		return filepath.Join(d, "peers")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "secretrun", "peers")
}

// peerBinary finds an installed peer and returns the copy of it that is
// timed (see installed), or says why it is not measured.
func (h *harness) peerBinary(name string) (string, string) {
	p := filepath.Join(peersDir(), name)
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		return "", "not installed (scripts/install-peers.sh installs it)"
	}
	c, err := h.installed(p)
	if err != nil {
		return "", err.Error()
	}
	return c, ""
}

func (h *harness) measurePeers(ctx context.Context) (*peersResult, error) {
	res := &peersResult{rounds: peerRounds, rssWait: 3*peerRSSInterval + peerRSSInterval/2}
	if h.opts.smoke {
		res.rounds = 1
		res.rssWait = peerRSSInterval + peerRSSInterval/2
	}
	var works []peerWork
	if v, err := h.vaultServer(); err != nil {
		res.skipped = append(res.skipped, skip{"Vault", err})
	} else {
		w, err := h.vaultPeerWorks(ctx, v)
		if err != nil {
			return nil, err
		}
		works = append(works, w...)
	}
	if m, err := h.motoServer(); err != nil {
		res.skipped = append(res.skipped, skip{"AWS (moto)", err})
	} else {
		w, err := h.awsPeerWorks(ctx, m)
		if err != nil {
			return nil, err
		}
		works = append(works, w...)
	}
	if s, err := h.infisicalServer(); err != nil {
		res.skipped = append(res.skipped, skip{"Infisical", err})
	} else {
		works = append(works, h.infisicalPeerWork(s))
	}
	vw, err := h.versionPeerWork(ctx)
	if err != nil {
		return nil, err
	}
	works = append(works, vw)

	for i := range works {
		h.verifyPeers(ctx, &works[i])
	}
	res.rows = h.timePeers(ctx, works, res.rounds)
	for _, w := range works {
		if !w.rss {
			continue
		}
		for _, t := range w.tools {
			if t.reference {
				continue
			}
			h.logf("peers: memory of %s supervising %s", t.name, w.name)
			res.rss = append(res.rss, h.peerRSS(ctx, w, t, res.rssWait))
		}
	}
	if v, err := h.vaultServer(); err == nil {
		h.logf("peers: secretrun's memory over many polls")
		if res.flat, err = h.flatRSS(ctx, v); err != nil {
			res.flatErr = err.Error()
		}
	}
	return res, nil
}

// verifyChild prints a digest of the named variables, one value a line,
// so that a tool's delivery can be checked without any value being
// printed or passed on a command line.
func verifyChild(vars []string) []string {
	return append([]string{"/bin/sh", "-c", `for v do /usr/bin/printenv "$v" || echo "$v is missing"; done | /usr/bin/sha256sum`, "sh"}, vars...)
}

var digestLine = regexp.MustCompile(`(?m)^([0-9a-f]{64})  -$`)

func digest(values []string) string {
	h := sha256.New()
	for _, v := range values {
		io.WriteString(h, v+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// verifyPeers runs each tool once with a child that checks every variable,
// so that only tools that deliver the secrets are timed.
func (h *harness) verifyPeers(ctx context.Context, w *peerWork) {
	if w.version {
		return
	}
	want := digest(w.values)
	for i := range w.tools {
		t := &w.tools[i]
		if t.missing != "" {
			continue
		}
		argv := t.argv(verifyChild(w.vars))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = t.env
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		got := digestLine.FindStringSubmatch(stdout.String())
		switch {
		case err != nil:
			t.missing = "failed: " + firstLine(stderr.String(), err)
		case got == nil:
			t.missing = "started no child that printed the check"
		case got[1] != want:
			t.missing = "the child did not get every secret"
		}
		if t.missing != "" {
			t.failed = true
			h.logf("peers: %s, %s: %s", w.name, t.name, t.missing)
		}
	}
}

// firstLine is the last non-empty line of a tool's stderr (where a Go
// program's fatal error is), or err when there is none, cut short.
func firstLine(stderr string, err error) string {
	s := err.Error()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			s = l
			break
		}
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// timePeers runs every work's tools in turns: in each round, the works and
// the tools within each work come in a new random order, so that a change
// in the machine's load weighs on every tool alike. The first round warms
// the caches up and is not counted, except in a smoke run.
func (h *harness) timePeers(ctx context.Context, works []peerWork, rounds int) []peerRow {
	rows := make([]peerRow, len(works))
	for i, w := range works {
		rows[i] = peerRow{work: w.name, goal: w.goal, version: w.version}
		for _, t := range w.tools {
			rows[i].results = append(rows[i].results, peerResult{tool: t.name, missing: t.missing, failed: t.failed, note: t.note, reference: t.reference})
		}
	}
	rng := rand.New(rand.NewPCG(17, uint64(time.Now().UnixNano())))
	warm := 1
	if h.opts.smoke {
		warm = 0
	}
	for round := range warm + rounds {
		h.logf("peers: round %d of %d", round+1, warm+rounds)
		for _, wi := range rng.Perm(len(works)) {
			w := works[wi]
			for _, ti := range rng.Perm(len(w.tools)) {
				r := &rows[wi].results[ti]
				if r.missing != "" {
					continue
				}
				d, err := timeCommand(ctx, w.tools[ti].argv([]string{"/bin/true"}), w.tools[ti].env)
				if err != nil {
					r.missing = "failed while timed: " + firstLine("", err)
					r.failed = true
					r.s = nil
					continue
				}
				if round >= warm {
					r.s = append(r.s, d)
				}
			}
		}
	}
	return rows
}

func (h *harness) vaultPeerWorks(ctx context.Context, v *vaultBackend) ([]peerWork, error) {
	tokenFile := filepath.Join(h.dir, "agent-token")
	if err := os.WriteFile(tokenFile, []byte(vaulttest.RootToken), 0o600); err != nil {
		return nil, err
	}
	agentBin, agentErr := h.installedVault()
	sstartBin, sstartMissing := h.peerBinary("sstart")
	var works []peerWork
	for _, sz := range []struct {
		paths, fields int
		goal          float64
	}{{1, 10, 0.7}, {100, 10, 0.6}} {
		if h.opts.smoke && sz.paths > 1 {
			sz.paths = 3
		}
		name := fmt.Sprintf("Vault KV v2, %d %s × %d fields", sz.paths, plural(sz.paths, "path"), sz.fields)
		base := fmt.Sprintf("bench/peers/%dx%d", sz.paths, sz.fields)
		type source struct {
			path   string
			prefix string
		}
		sources := make([]source, sz.paths)
		var vars, values []string
		for i := range sources {
			sources[i] = source{path: fmt.Sprintf("%s/%d", base, i)}
			if sz.paths > 1 {
				sources[i].prefix = fmt.Sprintf("S%d_", i)
			}
			fields := map[string]any{}
			for _, f := range fieldNames(sz.fields) {
				val := randomValue()
				fields[f] = val
				vars = append(vars, sources[i].prefix+f)
				values = append(values, val)
			}
			if _, err := v.Root.KVv2("secret").Put(ctx, sources[i].path, fields); err != nil {
				return nil, fmt.Errorf("seeding %s: %w", sources[i].path, err)
			}
		}
		slug := fmt.Sprintf("vault-%dx%d", sz.paths, sz.fields)

		var sr strings.Builder
		fmt.Fprintf(&sr, "version: 1\nproviders:\n  vault:\n    type: vault\n    address: %s\nenvironments:\n  bench:\n", v.Addr)
		for _, s := range sources {
			fmt.Fprintf(&sr, "    - from: vault\n      path: secret/%s\n", s.path)
			if s.prefix != "" {
				fmt.Fprintf(&sr, "      prefix: %s\n", s.prefix)
			}
		}
		srConfig, err := h.writeConfig("peers-secretrun-"+slug, sr.String())
		if err != nil {
			return nil, err
		}
		srWatch, err := h.writeConfig("peers-secretrun-watch-"+slug, sr.String()+fmt.Sprintf("watch:\n  interval: %s\n  on_change: restart\n", peerRSSInterval))
		if err != nil {
			return nil, err
		}
		vaultEnv := append(baseEnv(), "VAULT_TOKEN="+vaulttest.RootToken, "VAULT_ADDR="+v.Addr)
		tools := []peerTool{h.secretrunTool(srConfig, srWatch, vaultEnv)}

		st := peerTool{name: toolSstart, env: vaultEnv, missing: sstartMissing}
		if sstartMissing == "" {
			var y strings.Builder
			y.WriteString("inherit: true\nproviders:\n")
			for i, s := range sources {
				fmt.Fprintf(&y, "  - kind: vault\n    id: p%d\n    address: %s\n    mount: secret\n    path: %s\n", i, v.Addr, s.path)
				if s.prefix != "" {
					y.WriteString("    keys:\n")
					for _, f := range fieldNames(sz.fields) {
						fmt.Fprintf(&y, "      %s: %s%s\n", f, s.prefix, f)
					}
				}
			}
			cfg, err := h.writeConfig("peers-sstart-"+slug, y.String())
			if err != nil {
				return nil, err
			}
			st = sstartTool(sstartBin, cfg, vaultEnv)
		}
		tools = append(tools, st,
			peerTool{name: toolChamber, missing: "no Vault backend (SSM Parameter Store, Secrets Manager, S3 only)"})

		at := peerTool{name: toolAgent, env: baseEnv()}
		if agentErr != nil {
			at.missing = "no Vault binary: " + agentErr.Error()
		} else {
			var templates []agentTemplate
			for _, s := range sources {
				for _, f := range fieldNames(sz.fields) {
					templates = append(templates, agentTemplate{env: s.prefix + f, path: "secret/data/" + s.path, field: f})
				}
			}
			agentDir := filepath.Join(h.dir, "agent-"+slug)
			if err := os.MkdirAll(agentDir, 0o700); err != nil {
				return nil, err
			}
			if at, err = agentTool(agentBin, agentDir, v.Addr, tokenFile, templates, vars); err != nil {
				return nil, err
			}
		}
		tools = append(tools, at)
		works = append(works, peerWork{name: name, goal: sz.goal, vars: vars, values: values, tools: tools, rss: sz.paths == 1})
	}
	return works, nil
}

// secretrunTool runs the built secretrun with config, and with watchConfig
// (the same sources, watched) to supervise.
func (h *harness) secretrunTool(config, watchConfig string, env []string) peerTool {
	t := peerTool{name: toolSecretrun, env: env,
		argv: func(child []string) []string {
			return append([]string{h.bin, "run", "-c", config, "--"}, child...)
		}}
	if watchConfig != "" {
		t.superviseHow = fmt.Sprintf("`run --watch`, interval %s", peerRSSInterval)
		t.supervise = func(child []string) []string {
			return append([]string{h.bin, "run", "--watch", "-c", watchConfig, "--"}, child...)
		}
	}
	return t
}

// sstartTool runs `sstart run`, which starts the child and waits for it:
// it has no refresh, so supervising is that same command.
func sstartTool(bin, config string, env []string) peerTool {
	argv := func(child []string) []string {
		return append([]string{bin, "run", "-c", config, "--"}, child...)
	}
	return peerTool{name: toolSstart, env: env, argv: argv, supervise: argv,
		superviseHow: "`run` (it has no refresh; it waits for the child)"}
}

// agentTemplate is one env_template block: one variable from one field.
type agentTemplate struct {
	env, path, field string
}

// agentTool runs Vault Agent as a process supervisor: an exec stanza with
// one env_template per variable, logged in with a token file (Agent
// refuses to start without an auto_auth method). With
// restart_on_secret_changes = "never" it starts the child once and exits
// with the child's status when the child exits; to supervise, it
// re-renders static secrets every peerRSSInterval and restarts the child
// on a change, as secretrun's watch does.
func agentTool(bin, dir, addr, tokenFile string, templates []agentTemplate, vars []string) (peerTool, error) {
	text := func(child []string, supervise bool) string {
		var b strings.Builder
		fmt.Fprintf(&b, "vault {\n  address = %s\n}\n", hclString(addr))
		fmt.Fprintf(&b, "auto_auth {\n  method \"token_file\" {\n    config = {\n      token_file_path = %s\n    }\n  }\n}\n", hclString(tokenFile))
		b.WriteString("template_config {\n  exit_on_retry_failure = true\n")
		restart := "never"
		if supervise {
			fmt.Fprintf(&b, "  static_secret_render_interval = %s\n", hclString(peerRSSInterval.String()))
			restart = "always"
		}
		b.WriteString("}\n")
		quoted := make([]string, len(child))
		for i, a := range child {
			quoted[i] = hclString(a)
		}
		fmt.Fprintf(&b, "exec {\n  command = [%s]\n  restart_on_secret_changes = %q\n}\n", strings.Join(quoted, ", "), restart)
		for _, t := range templates {
			contents := fmt.Sprintf(`{{ with secret %q }}{{ .Data.data.%s }}{{ end }}`, t.path, t.field)
			fmt.Fprintf(&b, "env_template %s {\n  contents = %s\n  error_on_missing_key = true\n}\n", hclString(t.env), hclString(contents))
		}
		return b.String()
	}
	// Agent takes its child from its config: one file for each child the
	// benchmark gives it, written before anything is timed.
	configs := map[string]string{}
	for i, c := range []struct {
		child     []string
		supervise bool
	}{{verifyChild(vars), false}, {[]string{"/bin/true"}, false}, {[]string{"/bin/sh", "-c", announceChild}, true}} {
		p := filepath.Join(dir, fmt.Sprintf("agent-%d.hcl", i))
		if err := os.WriteFile(p, []byte(text(c.child, c.supervise)), 0o600); err != nil {
			return peerTool{}, err
		}
		configs[fmt.Sprint(c.supervise, c.child)] = p
	}
	configFor := func(child []string, supervise bool) string {
		if p, ok := configs[fmt.Sprint(supervise, child)]; ok {
			return p
		}
		panic(fmt.Sprintf("no Vault Agent config for the child %q", child))
	}
	return peerTool{name: toolAgent, env: baseEnv(),
		argv: func(child []string) []string {
			return []string{bin, "agent", "-config=" + configFor(child, false)}
		},
		supervise: func(child []string) []string {
			return []string{bin, "agent", "-config=" + configFor(child, true)}
		},
		superviseHow: fmt.Sprintf("`agent` with `exec`, `static_secret_render_interval = \"%s\"`", peerRSSInterval),
		note:         "waits a fixed 2 s after rendering before it starts the child",
	}, nil
}

// hclString quotes s for HCL, whose strings take JSON's escapes.
func hclString(s string) string {
	return strconv.Quote(s)
}

// awsToolEnv is the environment every tool reads AWS with: static
// credentials, an explicit region, moto as the endpoint of every service
// (AWS_ENDPOINT_URL for the SDK v2, CHAMBER_AWS_SSM_ENDPOINT, which
// chamber's endpoint resolver returns for every service it calls), and no
// instance metadata.
func awsToolEnv(endpoint string) []string {
	return append(append(baseEnv(), awsEnv(endpoint)...),
		"AWS_REGION="+mototest.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"CHAMBER_AWS_SSM_ENDPOINT="+endpoint,
	)
}

func (h *harness) awsPeerWorks(ctx context.Context, m *motoBackend) ([]peerWork, error) {
	env := awsToolEnv(m.URL)
	sstartBin, sstartMissing := h.peerBinary("sstart")
	chamberBin, chamberMissing := h.peerBinary("chamber")
	noAgent := peerTool{name: toolAgent, missing: "reads only Vault"}
	fields := fieldNames(10)
	floor, err := h.buildProgram(ctx, "awsfloor", awsFloorSource)
	if err != nil {
		return nil, err
	}

	// Secrets Manager: one secret, a JSON object of ten keys. chamber
	// lower-cases service names, so the secret's name is lower case.
	const smName = "bench/peers/sm1x10"
	smValues := map[string]any{}
	var values []string
	for _, f := range fields {
		v := randomValue()
		smValues[f] = v
		values = append(values, v)
	}
	if _, err := m.Client().CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(smName), SecretString: aws.String(jsonObject(smValues)),
	}); err != nil {
		return nil, fmt.Errorf("seeding %s: %w", smName, err)
	}
	sm := fmt.Sprintf("version: 1\nproviders:\n  aws:\n    type: aws-secrets-manager\n    region: %s\nenvironments:\n  bench:\n    - from: aws\n      secret: %s\n", mototest.Region, smName)
	srConfig, err := h.writeConfig("peers-secretrun-sm", sm)
	if err != nil {
		return nil, err
	}
	srWatch, err := h.writeConfig("peers-secretrun-watch-sm", sm+fmt.Sprintf("watch:\n  interval: %s\n  on_change: restart\n", peerRSSInterval))
	if err != nil {
		return nil, err
	}
	smTools := []peerTool{h.secretrunTool(srConfig, srWatch, env)}
	st := peerTool{name: toolSstart, missing: sstartMissing}
	if sstartMissing == "" {
		cfg, err := h.writeConfig("peers-sstart-sm", fmt.Sprintf("inherit: true\nproviders:\n  - kind: aws_secretsmanager\n    id: aws\n    secret_id: %s\n    region: %s\n    endpoint: %s\n", smName, mototest.Region, m.URL))
		if err != nil {
			return nil, err
		}
		st = sstartTool(sstartBin, cfg, env)
		st.note = "reads with GetSecretValue"
	}
	smTools = append(smTools, st, chamberTool(chamberBin, chamberMissing, smName, append(env, "CHAMBER_SECRET_BACKEND=secretsmanager"), "Secrets Manager backend (`CHAMBER_SECRET_BACKEND=secretsmanager`)"), noAgent,
		awsFloorTool(floor, env, "secretsmanager", "secretsmanager.GetSecretValue", fmt.Sprintf(`{"SecretId":%q}`, smName)))

	// Parameter Store: ten SecureString parameters below one path, as
	// chamber writes a service.
	const ssmPath = "/bench/peers/ssm1x10"
	var ssmValues []string
	client := ssm.New(ssm.Options{
		Region:       mototest.Region,
		BaseEndpoint: aws.String(m.URL),
		Credentials:  m.Client().Options().Credentials,
	})
	for _, f := range fields {
		v := randomValue()
		ssmValues = append(ssmValues, v)
		if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(ssmPath + "/" + f), Value: aws.String(v), Type: ssmtypes.ParameterTypeSecureString,
		}); err != nil {
			return nil, fmt.Errorf("seeding %s/%s: %w", ssmPath, f, err)
		}
	}
	srSSM, err := h.writeConfig("peers-secretrun-ssm", fmt.Sprintf("version: 1\nproviders:\n  aws:\n    type: aws-ssm\n    region: %s\nenvironments:\n  bench:\n    - from: aws\n      path: %s\n", mototest.Region, ssmPath))
	if err != nil {
		return nil, err
	}
	ssmTools := []peerTool{
		h.secretrunTool(srSSM, "", env),
		{name: toolSstart, missing: "no Parameter Store provider"},
		chamberTool(chamberBin, chamberMissing, strings.TrimPrefix(ssmPath, "/"), env, "its default backend"),
		noAgent,
		awsFloorTool(floor, env, "ssm", "AmazonSSM.GetParametersByPath", fmt.Sprintf(`{"Path":%q,"Recursive":true,"WithDecryption":true,"MaxResults":10}`, ssmPath)),
	}
	return []peerWork{
		{name: "AWS Secrets Manager, 1 secret × 10 keys", goal: 0.7, vars: fields, values: values, tools: smTools, rss: true},
		{name: "AWS SSM Parameter Store, 1 path × 10 parameters", goal: 0.7, vars: fields, values: ssmValues, tools: ssmTools},
	}, nil
}

// awsFloorTool runs the floor program for one AWS JSON read.
func awsFloorTool(bin string, env []string, service, target, body string) peerTool {
	return peerTool{name: toolAWSFloor, env: env, reference: true,
		note: "a reference, not a peer: " + target + ", signed, then exec; no configuration, checks or supervision",
		argv: func(child []string) []string {
			return append([]string{bin, service, target, body, "--"}, child...)
		}}
}

// chamberTool runs `chamber exec SERVICE -- child`, which replaces itself
// with the child: no process of chamber's stays to supervise it.
func chamberTool(bin, missing, service string, env []string, how string) peerTool {
	t := peerTool{name: toolChamber, env: env, missing: missing, note: how + "; execs the child, nothing stays to supervise it"}
	if missing == "" {
		t.argv = func(child []string) []string {
			return append([]string{bin, "exec", service, "--"}, child...)
		}
	}
	return t
}

func (h *harness) infisicalPeerWork(s *infisicalBackend) peerWork {
	const path = "/peers-1x10"
	clientID, clientSecret := "peers-client", randomValue()
	s.AddIdentity(clientID, clientSecret, infisicalProject)
	var vars, values []string
	for _, f := range fieldNames(10) {
		v := randomValue()
		s.SetSecret(infisicalProject, infisicalEnv, path, f, v)
		vars = append(vars, f)
		values = append(values, v)
	}
	// Both log in with universal auth from the same variables, then list
	// the folder: no token is reused across runs.
	env := append(baseEnv(),
		"INFISICAL_UNIVERSAL_AUTH_CLIENT_ID="+clientID,
		"INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET="+clientSecret,
		"INFISICAL_SITE_URL="+s.URL,
	)
	work := peerWork{name: "Infisical, 1 path × 10 secrets (login + list)", goal: 0.7, vars: vars, values: values, rss: true}
	fail := func(err error) peerWork {
		work.tools = []peerTool{{name: toolSecretrun, missing: err.Error()}}
		return work
	}
	sr := fmt.Sprintf("version: 1\nproviders:\n  infisical:\n    type: infisical\n    site_url: %s\n    project_id: %s\nenvironments:\n  bench:\n    - from: infisical\n      environment: %s\n      path: %s\n", s.URL, infisicalProject, infisicalEnv, path)
	srConfig, err := h.writeConfig("peers-secretrun-infisical", sr)
	if err != nil {
		return fail(err)
	}
	srWatch, err := h.writeConfig("peers-secretrun-watch-infisical", sr+fmt.Sprintf("watch:\n  interval: %s\n  on_change: restart\n", peerRSSInterval))
	if err != nil {
		return fail(err)
	}
	work.tools = []peerTool{h.secretrunTool(srConfig, srWatch, env)}
	sstartBin, missing := h.peerBinary("sstart")
	st := peerTool{name: toolSstart, missing: missing}
	if missing == "" {
		cfg, err := h.writeConfig("peers-sstart-infisical", fmt.Sprintf("inherit: true\nproviders:\n  - kind: infisical\n    id: infisical\n    project_id: %s\n    environment: %s\n    path: %s\n", infisicalProject, infisicalEnv, path))
		if err != nil {
			return fail(err)
		}
		st = sstartTool(sstartBin, cfg, env)
	}
	work.tools = append(work.tools, st,
		peerTool{name: toolChamber, missing: "no Infisical backend"},
		peerTool{name: toolAgent, missing: "reads only Vault"})
	return work
}

// versionPeerWork is the programs that contact nothing: `secretrun
// version`, /bin/true, an empty Go program (the floor of any Go binary on
// this machine), the same importing net/http, and the peers' own version
// commands.
func (h *harness) versionPeerWork(ctx context.Context) (peerWork, error) {
	empty, err := h.buildProgram(ctx, "emptygo", "package main\n\nfunc main() {}\n")
	if err != nil {
		return peerWork{}, err
	}
	// The floor of any Go program that speaks HTTP: linking net/http
	// brings its package initialisation and, where a C compiler is
	// present (as for `go install`), the C library that net's resolver
	// links against.
	const httpSrc = "package main\n\nimport _ \"net/http\"\n\nfunc main() {}\n"
	withHTTP, err := h.buildProgram(ctx, "emptyhttp", httpSrc)
	if err != nil {
		return peerWork{}, err
	}
	withHTTPStatic, err := h.buildProgram(ctx, "emptyhttpstatic", httpSrc, "CGO_ENABLED=0")
	if err != nil {
		return peerWork{}, err
	}
	fixed := func(name string, argv ...string) peerTool {
		return peerTool{name: name, env: baseEnv(), argv: func([]string) []string { return argv }}
	}
	tools := []peerTool{
		fixed("`secretrun version`", h.bin, "version"),
		fixed(toolEmptyGo, empty),
		fixed(toolEmptyHTTP, withHTTP),
		fixed(toolEmptyHTTPStatic, withHTTPStatic),
		fixed("`/bin/true`", "/bin/true"),
	}
	for _, p := range []string{"sstart", "chamber"} {
		bin, missing := h.peerBinary(p)
		t := fixed("`"+p+" version`", bin, "version")
		t.missing = missing
		tools = append(tools, t)
	}
	if bin, err := h.installedVault(); err != nil {
		tools = append(tools, peerTool{name: "`vault version`", missing: err.Error()})
	} else {
		tools = append(tools, fixed("`vault version`", bin, "version"))
	}
	return peerWork{name: "programs that contact nothing", version: true, tools: tools}, nil
}

// installedVault is the Vault binary the tests build, installed for
// timing.
func (h *harness) installedVault() (string, error) {
	bin, err := vaulttest.Binary()
	if err != nil {
		return "", err
	}
	return h.installed(bin)
}

// supervised is a tool started with a child that announces itself and
// sleeps, in a process group of its own so that the child goes with it.
type supervised struct {
	cmd    *exec.Cmd
	done   chan error
	stderr *lockedLog
}

const announceChild = `echo started; exec sleep 3600`

func startSupervised(ctx context.Context, argv, env []string) (*supervised, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &lockedLog{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &supervised{cmd: cmd, done: make(chan error, 1), stderr: stderr}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		announced := false
		for sc.Scan() {
			if !announced && sc.Text() == "started" {
				announced = true
				close(started)
			}
		}
		s.done <- cmd.Wait()
	}()
	select {
	case <-started:
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("exited before its child started: %s", firstLine(stderr.String(), errors.Join(errors.New("exit"), err)))
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, errors.New("its child did not start within 60s")
	}
}

func (s *supervised) status() (hwm, rss int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	return statusKiB(string(b), "VmHWM"), statusKiB(string(b), "VmRSS"), nil
}

func (s *supervised) stop() {
	pg := -s.cmd.Process.Pid
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(pg, syscall.SIGKILL)
		<-s.done
	}
	// The child may outlive a tool that did not pass the signal on.
	_ = syscall.Kill(pg, syscall.SIGKILL)
}

// peerRSS reads a tool's VmHWM and VmRSS while it supervises a sleeping
// child, wait after the child started.
func (h *harness) peerRSS(ctx context.Context, w peerWork, t peerTool, wait time.Duration) peerRSSRow {
	row := peerRSSRow{work: w.name, tool: t.name, how: t.superviseHow}
	switch {
	case t.missing != "":
		row.missing = t.missing
		return row
	case t.supervise == nil:
		row.missing = "execs the child: no process of its own stays"
		return row
	}
	s, err := startSupervised(ctx, t.supervise([]string{"/bin/sh", "-c", announceChild}), t.env)
	if err != nil {
		row.missing = err.Error()
		return row
	}
	defer s.stop()
	time.Sleep(wait)
	if row.hwm, row.rss, err = s.status(); err != nil {
		row.missing = err.Error()
	}
	return row
}

// flatRSS runs `secretrun run --watch` on one Vault path with a short
// interval, through the counting proxy, and reads its memory after a
// number of polls: each idle poll of one path is one request.
func (h *harness) flatRSS(ctx context.Context, v *vaultBackend) ([]rssPoint, error) {
	const path = "bench/peers/flat"
	if _, err := v.Root.KVv2("secret").Put(ctx, path, randomFields(10)); err != nil {
		return nil, err
	}
	cfg, err := h.writeConfig("peers-flat", fmt.Sprintf("version: 1\nproviders:\n  vault:\n    type: vault\n    address: %s\nenvironments:\n  bench:\n    - from: vault\n      path: secret/%s\nwatch:\n  interval: %s\n  on_change: restart\n", v.proxy.url, path, flatInterval))
	if err != nil {
		return nil, err
	}
	checkpoints := []int{10, 100, 300, 1000, 3000}
	if h.opts.smoke {
		checkpoints = []int{10, 30}
	}
	// The runtime's GC trace tells a heap that grows from memory the
	// runtime has not yet returned to the system.
	env := append(baseEnv(), "VAULT_TOKEN="+vaulttest.RootToken, "GODEBUG=gctrace=1")
	started := time.Now()
	s, err := startSupervised(ctx, []string{h.bin, "run", "--watch", "-c", cfg, "--", "/bin/sh", "-c", announceChild}, env)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	base := total(v.proxy.counts())
	var points []rssPoint
	for _, n := range checkpoints {
		deadline := time.Now().Add(time.Duration(n)*flatInterval*20 + 30*time.Second)
		for total(v.proxy.counts())-base < n {
			if time.Now().After(deadline) {
				return points, fmt.Errorf("fewer than %d polls in %s", n, time.Since(started).Round(time.Second))
			}
			time.Sleep(flatInterval / 2)
		}
		hwm, rss, err := s.status()
		if err != nil {
			return points, err
		}
		gcs, live := lastGC(s.stderr.String())
		points = append(points, rssPoint{polls: n, hwm: hwm, rss: rss, after: time.Since(started), gcs: gcs, liveMB: live})
	}
	return points, nil
}

// gctraceLine is one collection in GODEBUG=gctrace=1 output: "gc 12 @3.2s
// 0%: …, 4->4->2 MB, 5 MB goal, …"; the third heap size is what stayed live.
var gctraceLine = regexp.MustCompile(`(?m)^gc (\d+) @[\d.]+s .*?(\d+)->(\d+)->(\d+) MB`)

// lastGC returns the number of the last collection in a GC trace and the
// heap it left live, in MB.
func lastGC(trace string) (n, liveMB int) {
	all := gctraceLine.FindAllStringSubmatch(trace, -1)
	if len(all) == 0 {
		return 0, 0
	}
	last := all[len(all)-1]
	n, _ = strconv.Atoi(last[1])
	liveMB, _ = strconv.Atoi(last[4])
	return n, liveMB
}

// lockedLog collects a process's stderr for failure messages, written by
// exec's copying goroutine and read while the process may still run.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

//go:build linux

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/keyring"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// scenario is one secretrun.yaml whose start-up is measured.
type scenario struct {
	name   string
	vars   int           // variables the child gets
	target time.Duration // the start-up target, if there is one
	rss    bool          // also measure peak RSS while supervising
	poll   bool          // also count the requests of one watch poll
	// config is the file's text for a backend reached at endpoint.
	config func(endpoint string) string
	// env is what secretrun needs in its environment beside baseEnv.
	env func(endpoint string) []string
}

// backend is where a group's scenarios read from: directly for timings,
// through counted for request counts.
type backend struct {
	direct, counted string
	counter         counter
}

// group is one provider's scenarios.
type group struct {
	name  string
	title string
	setup func(ctx context.Context, h *harness) (backend, []scenario, error)
}

var startupGroups = []group{
	{"keyring", "OS keyring (Secret Service)", setupKeyring},
	{"aws", "AWS Secrets Manager (moto)", setupAWS},
	{"infisical", "Infisical (test server)", setupInfisical},
	{"vault", "Vault KV v2 (dev server)", setupVault},
}

// Groups measured apart from start-up.
const (
	groupMask     = "mask"
	groupVersion  = "version"
	groupRotation = "rotation"
	groupFaults   = "faults"
)

func groupNames() string {
	var names []string
	for _, g := range startupGroups {
		names = append(names, g.name)
	}
	return strings.Join(append(names, groupMask, groupVersion, groupRotation, groupFaults, groupPeers, groupLatency), ", ")
}

// size is a number of sources and of fields per source.
type size struct {
	sources, fields int
	target          time.Duration
	rss, poll       bool
	// concurrency sets the Vault provider's max_concurrency; 0 keeps its
	// default.
	concurrency int
}

func (s size) vars() int { return s.sources * s.fields }

const (
	vaultTarget1   = 9 * time.Millisecond
	vaultTarget100 = 100 * time.Millisecond
)

func vaultSizes(smoke bool) []size {
	if smoke {
		return []size{{1, 10, vaultTarget1, true, true, 0}, {2, 10, 0, false, false, 0}, {1, 1, 0, false, false, 0}}
	}
	return []size{
		{1, 10, vaultTarget1, true, true, 0},
		{100, 10, vaultTarget100, true, true, 0},
		{1, 1, 0, false, false, 0},
		{10, 10, 0, false, false, 0},
		{1000, 10, 0, true, true, 0},
		{1, 100, 0, false, false, 0},
		{1, 1000, 0, false, false, 0},
		// Whether the provider's request concurrency is what limits many paths.
		{100, 10, 0, false, false, 1},
		{100, 10, 0, false, false, 32},
	}
}

func awsSizes(smoke bool) []size {
	if smoke {
		return []size{{1, 10, 0, true, true, 0}, {2, 10, 0, false, false, 0}}
	}
	return []size{
		{1, 10, 0, true, true, 0},
		{40, 10, 0, true, true, 0},
		{10, 10, 0, false, false, 0},
		{100, 10, 0, false, true, 0},
		{1, 100, 0, false, false, 0},
	}
}

func infisicalSizes(smoke bool) []size {
	if smoke {
		return []size{{1, 5, 0, true, true, 0}, {2, 5, 0, false, true, 0}}
	}
	return []size{
		{1, 20, 0, true, true, 0},
		{5, 20, 0, true, true, 0},
		{1, 1, 0, false, false, 0},
		{1, 100, 0, false, false, 0},
		{1, 1000, 0, false, true, 0},
	}
}

func keyringSizes(smoke bool) []size {
	if smoke {
		return []size{{1, 2, 0, true, true, 0}}
	}
	return []size{{1, 10, 0, true, true, 0}, {1, 1, 0, false, false, 0}, {1, 100, 0, false, false, 0}}
}

// fieldNames are the fields of one seeded secret. Each source gets a prefix
// of its own, so every field becomes a distinct variable.
func fieldNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("F%d", i)
	}
	return names
}

func randomFields(n int) map[string]any {
	m := make(map[string]any, n)
	for _, f := range fieldNames(n) {
		m[f] = randomValue()
	}
	return m
}

func setupVault(ctx context.Context, h *harness) (backend, []scenario, error) {
	v, err := h.vaultServer()
	if err != nil {
		return backend{}, nil, err
	}
	var out []scenario
	for _, sz := range vaultSizes(h.opts.smoke) {
		base := fmt.Sprintf("bench/p%dx%d", sz.sources, sz.fields)
		name := fmt.Sprintf("%d %s × %d %s", sz.sources, plural(sz.sources, "path"), sz.fields, plural(sz.fields, "field"))
		settings := ""
		if sz.concurrency != 0 {
			name += fmt.Sprintf(", max_concurrency: %d", sz.concurrency)
			settings = fmt.Sprintf("    max_concurrency: %d\n", sz.concurrency)
		} else {
			err := parallel(ctx, sz.sources, func(i int) error {
				_, err := v.Root.KVv2("secret").Put(ctx, fmt.Sprintf("%s/%d", base, i), randomFields(sz.fields))
				return err
			})
			if err != nil {
				return backend{}, nil, err
			}
		}
		out = append(out, scenario{
			name:   name,
			vars:   sz.vars(),
			target: sz.target, rss: sz.rss, poll: sz.poll,
			config: func(endpoint string) string {
				var b strings.Builder
				fmt.Fprintf(&b, "version: 1\nproviders:\n  vault:\n    type: vault\n    address: %s\n%senvironments:\n  bench:\n", endpoint, settings)
				for i := range sz.sources {
					fmt.Fprintf(&b, "    - from: vault\n      path: secret/%s/%d\n      prefix: S%d_\n", base, i, i)
				}
				return b.String()
			},
			env: func(string) []string { return []string{"VAULT_TOKEN=" + vaulttest.RootToken} },
		})
	}
	return backend{direct: v.Addr, counted: v.proxy.url, counter: v.proxy}, out, nil
}

func setupAWS(ctx context.Context, h *harness) (backend, []scenario, error) {
	m, err := h.motoServer()
	if err != nil {
		return backend{}, nil, err
	}
	client := m.Client()
	var out []scenario
	for _, sz := range awsSizes(h.opts.smoke) {
		base := fmt.Sprintf("bench/n%dx%d", sz.sources, sz.fields)
		err := parallel(ctx, sz.sources, func(i int) error {
			_, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
				Name:         aws.String(fmt.Sprintf("%s/%d", base, i)),
				SecretString: aws.String(jsonObject(randomFields(sz.fields))),
			})
			return err
		})
		if err != nil {
			return backend{}, nil, err
		}
		out = append(out, scenario{
			name:   fmt.Sprintf("%d %s × %d %s", sz.sources, plural(sz.sources, "secret"), sz.fields, plural(sz.fields, "key")),
			vars:   sz.vars(),
			target: sz.target, rss: sz.rss, poll: sz.poll,
			config: func(string) string {
				var b strings.Builder
				fmt.Fprintf(&b, "version: 1\nproviders:\n  aws:\n    type: aws-secrets-manager\n    region: %s\nenvironments:\n  bench:\n", mototest.Region)
				for i := range sz.sources {
					fmt.Fprintf(&b, "    - from: aws\n      secret: %s/%d\n      prefix: S%d_\n", base, i, i)
				}
				return b.String()
			},
			env: awsEnv,
		})
	}
	return backend{direct: m.URL, counted: m.proxy.url, counter: m.proxy}, out, nil
}

func setupInfisical(_ context.Context, h *harness) (backend, []scenario, error) {
	s, err := h.infisicalServer()
	if err != nil {
		return backend{}, nil, err
	}
	var out []scenario
	for _, sz := range infisicalSizes(h.opts.smoke) {
		sc := infisicalScenario(s, fmt.Sprintf("/n%dx%d", sz.sources, sz.fields), sz.sources, sz.fields)
		sc.target, sc.rss, sc.poll = sz.target, sz.rss, sz.poll
		out = append(out, sc)
	}
	return backend{direct: s.URL, counted: s.proxy.url, counter: s.proxy}, out, nil
}

// infisicalScenario seeds `folders` folders below base with `per` secrets
// each and reads each folder as one source.
func infisicalScenario(s *infisicalBackend, base string, folders, per int) scenario {
	for i := range folders {
		for j := range per {
			s.SetSecret(infisicalProject, infisicalEnv, fmt.Sprintf("%s/p%d", base, i), fmt.Sprintf("S%d_K%d", i, j), randomValue())
		}
	}
	return scenario{
		name: fmt.Sprintf("%d %s × %d %s", folders, plural(folders, "path"), per, plural(per, "secret")),
		vars: folders * per,
		config: func(endpoint string) string {
			var b strings.Builder
			fmt.Fprintf(&b, "version: 1\nproviders:\n  infisical:\n    type: infisical\n    site_url: %s\n    project_id: %s\nenvironments:\n  bench:\n", endpoint, infisicalProject)
			for i := range folders {
				fmt.Fprintf(&b, "    - from: infisical\n      environment: %s\n      path: %s/p%d\n", infisicalEnv, base, i)
			}
			return b.String()
		},
		env: func(string) []string { return []string{"INFISICAL_TOKEN=" + s.token} },
	}
}

const keyringService = "secretrun-bench"

func setupKeyring(_ context.Context, h *harness) (backend, []scenario, error) {
	sizes := keyringSizes(h.opts.smoke)
	most := 0
	for _, sz := range sizes {
		most = max(most, sz.fields)
	}
	kr := keyring.OS{}
	h.keyringItems = most
	for i := range most {
		if err := kr.Set(keyringService, keyringKey(i), providers.NewSecret(randomValue())); err != nil {
			return backend{}, nil, fmt.Errorf("OS keyring: %w", err)
		}
	}
	var out []scenario
	for _, sz := range sizes {
		out = append(out, scenario{
			name: fmt.Sprintf("%d %s", sz.fields, plural(sz.fields, "key")),
			vars: sz.fields, target: sz.target, rss: sz.rss, poll: sz.poll,
			config: func(string) string {
				keys := make([]string, sz.fields)
				for i := range keys {
					keys[i] = keyringKey(i)
				}
				return fmt.Sprintf("version: 1\nproviders:\n  local:\n    type: keyring\n    service: %s\nenvironments:\n  bench:\n    - from: local\n      keys: [%s]\n",
					keyringService, strings.Join(keys, ", "))
			},
			env: func(string) []string { return nil },
		})
	}
	// D-Bus calls are not counted: there is no proxy in front of the bus.
	return backend{}, out, nil
}

func keyringKey(i int) string { return fmt.Sprintf("K%03d", i) }

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

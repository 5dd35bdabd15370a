//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/providertest/faultproxy"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// Fault recovery
//
// Each backend is reached through a faultproxy; `secretrun run --watch`
// runs with interval 1s and a child that prints the GENERATION field. A
// measurement injects a fault, holds it for a few seconds (or until secretrun
// has logged the outage, if that takes longer), then removes it and writes
// a new generation straight to the backend; the figure is the time from
// the end of that write to the restarted child printing the generation.
// The fault kinds take turns within each round, so that a change in the
// machine's load weighs on all of them alike.

const (
	faultInterval = time.Second
	// faultRecoveryLimit is how long a recovery may take before the run is
	// counted as not recovered. A revoked token is replaced when the token
	// would have been renewed, at two thirds of its TTL.
	faultRecoveryLimit = 40 * time.Second
	// faultTokenTTL is the TTL of the tokens secretrun logs in for.
	faultTokenTTL = 30 * time.Second
	// retryAfter is what the 429 answers ask for.
	retryAfter = 2 * time.Second
)

// faultKind is one way a backend fails, and how it stops failing.
type faultKind struct {
	name  string
	start func(ctx context.Context) error
	end   func(ctx context.Context) error
}

// proxyFaults are the faults every backend gets, injected by its proxy.
func proxyFaults(p *faultproxy.Proxy) []faultKind {
	mode := func(name string, m faultproxy.Mode) faultKind {
		return faultKind{
			name:  name,
			start: func(context.Context) error { p.Set(m); return nil },
			end:   func(context.Context) error { p.Set(faultproxy.Pass); return nil },
		}
	}
	return []faultKind{
		mode("connection refused", faultproxy.Refuse),
		mode("black hole (connections accepted, never answered)", faultproxy.Blackhole),
		mode("connection reset", faultproxy.Reset),
		mode("HTTP 500", faultproxy.HTTPStatus(500, 0)),
		mode(fmt.Sprintf("HTTP 429, Retry-After: %d", int(retryAfter/time.Second)), faultproxy.HTTPStatus(429, retryAfter)),
	}
}

// faultTarget is one backend under test.
type faultTarget struct {
	name   string
	config string
	env    []string
	// put writes generation gen straight to the backend, not through the
	// proxy.
	put    func(ctx context.Context, gen int) error
	faults []faultKind
	close  func()
}

// faultRow is the recoveries from one kind of fault on one backend.
type faultRow struct {
	backend, fault string
	s              sample
	// failed says, per run that did not recover in time, why.
	failed []string
	// restarts counts children restarted while the fault lasted, and
	// unnoticed the faults secretrun did not log as an outage.
	restarts, unnoticed int
	// ownRecovery is, for a fault that secretrun can get over by itself
	// (a revoked token it logs in again for), the time from the fault to
	// secretrun logging the backend reachable again.
	ownRecovery sample
}

// isolationResult is a rotation written to a healthy backend (moto) while
// another one (Vault) is black-holed, against the same rotation with
// nothing faulty.
type isolationResult struct {
	healthy, blackholed sample
	failed              []string
}

// faultResult is everything the fault measurements found.
type faultResult struct {
	runs int
	// outage is how long each fault is held at least.
	outage    time.Duration
	rows      []faultRow
	isolation *isolationResult
	skipped   []skip
}

func (h *harness) measureFaults(ctx context.Context) (*faultResult, error) {
	runs := 5
	if h.opts.smoke {
		runs = 1
	}
	res := &faultResult{runs: runs, outage: 5 * time.Second}
	if h.opts.smoke {
		res.outage = 2 * time.Second
	}
	setups := []struct {
		name  string
		setup func(context.Context) (*faultTarget, error)
	}{
		{"Vault KV v2", h.vaultFaultTarget},
		{"AWS Secrets Manager (moto)", h.awsFaultTarget},
		{"Infisical (test server)", h.infisicalFaultTarget},
	}
	for _, s := range setups {
		h.logf("faults: %s", s.name)
		t, err := s.setup(ctx)
		if err != nil {
			res.skipped = append(res.skipped, skip{s.name, err})
			continue
		}
		rows, err := h.recoveries(ctx, t, runs, res.outage)
		t.close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		res.rows = append(res.rows, rows...)
	}
	h.logf("faults: a rotation on moto while Vault is black-holed")
	iso, err := h.measureIsolation(ctx, runs)
	if err != nil {
		res.skipped = append(res.skipped, skip{"a rotation on a healthy backend while another is black-holed", err})
	} else {
		res.isolation = iso
	}
	return res, nil
}

// watchConfig is the watch block of the fault measurements.
var watchConfig = fmt.Sprintf("watch:\n  interval: %s\n  on_change: restart\n  stop_timeout: 5s\n", faultInterval)

// recoveries measures every fault of t, runs times, the kinds taking turns;
// "none" is a rotation with nothing faulty, for comparison.
func (h *harness) recoveries(ctx context.Context, t *faultTarget, runs int, outage time.Duration) ([]faultRow, error) {
	gen := 0
	if err := t.put(ctx, gen); err != nil {
		return nil, err
	}
	start := func() (*watched, error) {
		w, err := h.startWatched(ctx, t.config, t.env, generationChild...)
		if err != nil {
			return nil, err
		}
		if _, err := w.waitGeneration(gen, 30*time.Second); err != nil {
			w.stop()
			return nil, err
		}
		return w, nil
	}
	w, err := start()
	if err != nil {
		return nil, err
	}
	defer func() { w.stop() }()

	kinds := append([]faultKind{{name: "none (a rotation with nothing faulty)"}}, t.faults...)
	rows := make([]faultRow, len(kinds))
	for i, k := range kinds {
		rows[i] = faultRow{backend: t.name, fault: k.name}
	}
	for run := range runs {
		for i, k := range kinds {
			row := &rows[i]
			h.logf("faults: %s: %s, run %d", t.name, k.name, run+1)
			w.drain(nil)
			if k.start == nil {
				// Beyond secretrun's guard against flapping secrets.
				time.Sleep(2*max(faultInterval, time.Second) + 500*time.Millisecond)
			} else {
				got, err := hold(ctx, w, k, outage)
				if err != nil {
					return nil, err
				}
				if !got.noticed {
					row.unnoticed++
				}
				row.restarts += got.restarts
				if got.ownRecovery > 0 {
					row.ownRecovery = append(row.ownRecovery, got.ownRecovery)
				}
			}
			gen++
			if err := t.put(ctx, gen); err != nil {
				return nil, fmt.Errorf("write generation %d: %w", gen, err)
			}
			t0 := time.Now()
			got, err := w.waitGeneration(gen, faultRecoveryLimit)
			if err == nil {
				row.s = append(row.s, got.at.Sub(t0))
				continue
			}
			row.failed = append(row.failed, fmt.Sprintf("not within %s", faultRecoveryLimit))
			h.logf("faults: %s: %s: %v", t.name, k.name, err)
			// A fresh secretrun, so that the next measurement does not
			// inherit this one's state.
			w.stop()
			if w, err = start(); err != nil {
				return nil, err
			}
		}
	}
	return rows, nil
}

// held is what happened while a fault lasted.
type held struct {
	// noticed: secretrun logged the outage.
	noticed bool
	// restarts of the child.
	restarts int
	// ownRecovery is when secretrun logged the backend reachable again,
	// counted from the fault's start; zero if it did not.
	ownRecovery time.Duration
}

// hold injects fault k and keeps it for outage, or until secretrun has
// logged the outage if that takes longer (a black hole shows only when a
// poll times out), then removes it.
func hold(ctx context.Context, w *watched, k faultKind, outage time.Duration) (held, error) {
	var got held
	if err := k.start(ctx); err != nil {
		return got, fmt.Errorf("start %s: %w", k.name, err)
	}
	began := time.Now()
	seen := func(l line) {
		switch {
		case !l.stderr && strings.HasPrefix(l.text, "generation="):
			got.restarts++
		case l.stderr && strings.Contains(l.text, " reachable again") && got.noticed && got.ownRecovery == 0:
			got.ownRecovery = l.at.Sub(began)
		}
	}
	logged := func(l line) bool { return l.stderr && strings.Contains(l.text, " unreachable: ") }
	if _, err := w.waitFor(15*time.Second, "an outage logged", logged, seen); err == nil {
		got.noticed = true
	}
	if rest := outage - time.Since(began); rest > 0 {
		_, _ = w.waitFor(rest, "", func(line) bool { return false }, seen)
	}
	if err := k.end(ctx); err != nil {
		return got, fmt.Errorf("end %s: %w", k.name, err)
	}
	return got, nil
}

// vaultFaultTarget is a Vault of its own, which can be sealed, read by
// secretrun with an AppRole login, as a machine identity would.
func (h *harness) vaultFaultTarget(ctx context.Context) (*faultTarget, error) {
	v, err := startSealableVault()
	if err != nil {
		return nil, err
	}
	p, err := faultproxy.New(strings.TrimPrefix(v.Addr, "http://"))
	if err != nil {
		v.stop()
		return nil, err
	}
	closeAll := func() { _ = p.Close(); v.stop() }
	roleID, secretIDFile, err := h.approle(ctx, v.Vault)
	if err != nil {
		closeAll()
		return nil, err
	}
	cfg, err := h.writeConfig("faults-vault", fmt.Sprintf(
		"version: 1\nproviders:\n  vault:\n    type: vault\n    address: %s\n    auth:\n      method: approle\n      role_id: %s\n      secret_id_file: %s\nenvironments:\n  bench:\n    - from: vault\n      path: secret/bench/faults\n%s",
		p.URL(), roleID, secretIDFile, watchConfig))
	if err != nil {
		closeAll()
		return nil, err
	}
	put := func(ctx context.Context, gen int) error {
		// Right after an unseal the KV mount may not be ready yet.
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err = v.Root.KVv2("secret").Put(ctx, "bench/faults", map[string]any{"GENERATION": fmt.Sprint(gen), "TOKEN": randomValue()}); err == nil {
				return nil
			}
		}
		return err
	}
	faults := append(proxyFaults(p),
		faultKind{
			name:  "sealed Vault (sealed, then unsealed)",
			start: func(ctx context.Context) error { return v.Root.Sys().SealWithContext(ctx) },
			end: func(ctx context.Context) error {
				_, err := v.Root.Sys().UnsealWithContext(ctx, v.unsealKey)
				return err
			},
		},
		faultKind{
			name:  fmt.Sprintf("revoked token (secretrun's AppRole token, TTL %s, revoked)", faultTokenTTL),
			start: func(ctx context.Context) error { return revokeAppRoleTokens(ctx, v.Vault) },
			// The AppRole login still works: recovery is secretrun's
			// own, by logging in again.
			end: func(context.Context) error { return nil },
		})
	return &faultTarget{name: "Vault KV v2", config: cfg, env: baseEnv(), put: put, faults: faults, close: closeAll}, nil
}

// revokeAppRoleTokens revokes every token an AppRole login made, and waits
// until Vault, which queues revocations, has done it.
func revokeAppRoleTokens(ctx context.Context, v *vaulttest.Vault) error {
	if err := v.Root.Sys().RevokePrefixWithContext(ctx, "auth/approle/login"); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, err := appRoleTokens(ctx, v)
		if err != nil || left == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d AppRole tokens still valid 10s after their revocation", left)
		}
	}
}

// appRoleTokens counts the valid tokens an AppRole login made.
func appRoleTokens(ctx context.Context, v *vaulttest.Vault) (int, error) {
	s, err := v.Root.Logical().ListWithContext(ctx, "auth/token/accessors")
	if err != nil || s == nil {
		return 0, err
	}
	keys, _ := s.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		t, err := v.Root.Logical().WriteWithContext(ctx, "auth/token/lookup-accessor", map[string]any{"accessor": k})
		if err != nil {
			continue // revoked meanwhile
		}
		if path, _ := t.Data["path"].(string); path == "auth/approle/login" {
			n++
		}
	}
	return n, nil
}

// approle enables AppRole auth with a role that may read secret/bench/*
// and returns its role id and a file holding a secret id.
func (h *harness) approle(ctx context.Context, v *vaulttest.Vault) (roleID, secretIDFile string, err error) {
	c := v.Root
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return "", "", err
	}
	const policy = `path "secret/data/bench/*" { capabilities = ["read"] }
path "secret/metadata/bench/*" { capabilities = ["read"] }`
	if err := c.Sys().PutPolicyWithContext(ctx, "bench", policy); err != nil {
		return "", "", err
	}
	if _, err := c.Logical().WriteWithContext(ctx, "auth/approle/role/bench", map[string]any{
		"token_policies": "bench",
		"token_ttl":      faultTokenTTL.String(),
		"token_max_ttl":  "1h",
	}); err != nil {
		return "", "", err
	}
	s, err := c.Logical().ReadWithContext(ctx, "auth/approle/role/bench/role-id")
	if err != nil {
		return "", "", err
	}
	roleID, _ = s.Data["role_id"].(string)
	s, err = c.Logical().WriteWithContext(ctx, "auth/approle/role/bench/secret-id", nil)
	if err != nil {
		return "", "", err
	}
	secretID, _ := s.Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		return "", "", errors.New("vault returned no AppRole role id or secret id")
	}
	secretIDFile = filepath.Join(h.dir, "approle-secret-id")
	return roleID, secretIDFile, os.WriteFile(secretIDFile, []byte(secretID), 0o600)
}

// awsFaultTarget is moto behind a faultproxy.
func (h *harness) awsFaultTarget(ctx context.Context) (*faultTarget, error) {
	m, err := h.motoServer()
	if err != nil {
		return nil, err
	}
	p, err := faultproxy.New(strings.TrimPrefix(m.URL, "http://"))
	if err != nil {
		return nil, err
	}
	const name = "bench/faults"
	client := m.Client()
	if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(generationJSON(0))}); err != nil {
		_ = p.Close()
		return nil, err
	}
	cfg, err := h.writeConfig("faults-aws", fmt.Sprintf(
		"version: 1\nproviders:\n  aws:\n    type: aws-secrets-manager\n    region: %s\nenvironments:\n  bench:\n    - from: aws\n      secret: %s\n%s",
		mototest.Region, name, watchConfig))
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	put := func(ctx context.Context, gen int) error {
		_, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(generationJSON(gen))})
		return err
	}
	return &faultTarget{
		name: "AWS Secrets Manager (moto)", config: cfg, env: append(baseEnv(), awsEnv(p.URL())...),
		put: put, faults: proxyFaults(p), close: func() { _ = p.Close() },
	}, nil
}

// infisicalFaultTarget is the Infisical test server behind a faultproxy.
func (h *harness) infisicalFaultTarget(context.Context) (*faultTarget, error) {
	s, err := h.infisicalServer()
	if err != nil {
		return nil, err
	}
	p, err := faultproxy.New(strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		return nil, err
	}
	const path = "/faults"
	cfg, err := h.writeConfig("faults-infisical", fmt.Sprintf(
		"version: 1\nproviders:\n  infisical:\n    type: infisical\n    site_url: %s\n    project_id: %s\nenvironments:\n  bench:\n    - from: infisical\n      environment: %s\n      path: %s\n%s",
		p.URL(), infisicalProject, infisicalEnv, path, watchConfig))
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	put := func(_ context.Context, gen int) error {
		s.SetSecret(infisicalProject, infisicalEnv, path, "TOKEN", randomValue())
		s.SetSecret(infisicalProject, infisicalEnv, path, "GENERATION", fmt.Sprint(gen))
		return nil
	}
	return &faultTarget{
		name: "Infisical (test server)", config: cfg, env: append(baseEnv(), "INFISICAL_TOKEN="+s.token),
		put: put, faults: proxyFaults(p), close: func() { _ = p.Close() },
	}, nil
}

func generationJSON(gen int) string {
	return jsonObject(map[string]any{"GENERATION": fmt.Sprint(gen), "TOKEN": randomValue()})
}

// awsEnv is what secretrun needs to reach moto at endpoint.
func awsEnv(endpoint string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + mototest.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + mototest.SecretAccessKey,
		"AWS_ENDPOINT_URL=" + endpoint,
		// No shared config or credentials file of the machine's.
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
}

// measureIsolation writes rotations to moto, in turns with nothing faulty
// and while Vault, the other backend of the same environment, is
// black-holed. The child prints its generation only when Vault's value is
// still in its environment.
func (h *harness) measureIsolation(ctx context.Context, runs int) (*isolationResult, error) {
	v, err := h.vaultServer()
	if err != nil {
		return nil, err
	}
	m, err := h.motoServer()
	if err != nil {
		return nil, err
	}
	vp, err := faultproxy.New(strings.TrimPrefix(v.Addr, "http://"))
	if err != nil {
		return nil, err
	}
	defer vp.Close()
	if _, err := v.Root.KVv2("secret").Put(ctx, "bench/isolation", map[string]any{"FROM_VAULT": randomValue()}); err != nil {
		return nil, err
	}
	const name = "bench/isolation"
	client := m.Client()
	if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(generationJSON(0))}); err != nil {
		return nil, err
	}
	cfg, err := h.writeConfig("faults-isolation", fmt.Sprintf(
		"version: 1\nproviders:\n  vault:\n    type: vault\n    address: %s\n  aws:\n    type: aws-secrets-manager\n    region: %s\nenvironments:\n  bench:\n    - from: vault\n      path: secret/bench/isolation\n    - from: aws\n      secret: %s\n%s",
		vp.URL(), mototest.Region, name, watchConfig))
	if err != nil {
		return nil, err
	}
	env := append(append(baseEnv(), "VAULT_TOKEN="+vaulttest.RootToken), awsEnv(m.URL)...)
	w, err := h.startWatched(ctx, cfg, env, "/bin/sh", "-c",
		`if [ -n "$FROM_VAULT" ]; then echo "generation=$GENERATION"; else echo "generation=$GENERATION without Vault's value"; fi; exec sleep 3600`)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	if _, err := w.waitGeneration(0, 30*time.Second); err != nil {
		return nil, err
	}
	res := &isolationResult{}
	gen := 0
	rotate := func() (time.Duration, error) {
		gen++
		if _, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(generationJSON(gen))}); err != nil {
			return 0, err
		}
		t0 := time.Now()
		got, err := w.waitGeneration(gen, faultRecoveryLimit)
		if err != nil {
			return 0, err
		}
		return got.at.Sub(t0), nil
	}
	for run := range runs {
		h.logf("faults: isolation, run %d", run+1)
		time.Sleep(2*max(faultInterval, time.Second) + 500*time.Millisecond)
		w.drain(nil)
		d, err := rotate()
		if err != nil {
			return nil, fmt.Errorf("nothing faulty: %w", err)
		}
		res.healthy = append(res.healthy, d)

		time.Sleep(2*max(faultInterval, time.Second) + 500*time.Millisecond)
		w.drain(nil)
		vp.Set(faultproxy.Blackhole)
		// Vault's poller is then waiting on a poll that will time out.
		time.Sleep(faultInterval + faultInterval/2)
		d, err = rotate()
		if err != nil {
			res.failed = append(res.failed, fmt.Sprintf("not within %s", faultRecoveryLimit))
			h.logf("faults: isolation: %v", err)
		} else {
			res.blackholed = append(res.blackholed, d)
		}
		vp.Set(faultproxy.Pass)
		// Vault's outage ends before the next round starts.
		recovered := func(l line) bool { return l.stderr && strings.Contains(l.text, "reachable again") }
		if _, err := w.waitFor(30*time.Second, "Vault reachable again", recovered, nil); err != nil {
			h.logf("faults: isolation: %v", err)
		}
	}
	return res, nil
}

//go:build unix

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/vault/api"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/providertest"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// TestWatchScripts runs the rotation scripts in testdata/watch against real
// servers: a Vault dev server of each script's own, which the script can
// stop and start again on the same port, PostgreSQL for leased database
// credentials, and moto for Secrets Manager.
func TestWatchScripts(t *testing.T) {
	testscript.Run(t, serverScripts(t, "testdata/watch"))
}

// serverScripts are the parameters of the scripts in dir that run against
// real servers, with every command that drives them. A server a script
// needs but this machine lacks skips the script, and fails it under
// CI=true.
func serverScripts(t *testing.T, dir string) testscript.Params {
	_, vaultErr := vaulttest.Binary()
	if vaultErr != nil && os.Getenv("CI") == "true" {
		t.Fatalf("Vault is required under CI=true: %v", vaultErr)
	}
	var moto struct {
		once sync.Once
		srv  *mototest.Server
		err  error
	}
	var keyring struct {
		once sync.Once
		err  error
	}
	t.Cleanup(func() {
		if moto.srv != nil {
			moto.srv.Stop()
		}
	})
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			env.Setenv("HOME", home)
			env.Setenv("CI", "")
			env.Setenv("GITHUB_ACTIONS", "")
			env.Setenv("VAULT_TOKEN", vaulttest.RootToken)
			env.Setenv("VAULT_ADDR", "")
			// The process that runs the script's commands: the parent of
			// a child that secretrun replaced itself with.
			env.Setenv("SCRIPT_PID", strconv.Itoa(os.Getpid()))
			// The OS keyring, for scripts that keep login tokens in it.
			for _, v := range []string{"DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"} {
				env.Setenv(v, os.Getenv(v))
			}
			env.Values[vaultKey{}] = &scriptVault{}
			env.Defer(func() { env.Values[vaultKey{}].(*scriptVault).stop() })
			setupExtras(env)
			return os.MkdirAll(home, 0o700)
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "vault":
				return vaultErr == nil, nil
			case "moto":
				moto.once.Do(func() { moto.srv, moto.err = mototest.Start() })
				if moto.err != nil && os.Getenv("CI") == "true" {
					return false, fmt.Errorf("moto is required under CI=true: %v", moto.err)
				}
				return moto.err == nil, nil
			case "keyring":
				keyring.once.Do(func() { keyring.err = probeKeyring() })
				if keyring.err != nil && os.Getenv("CI") == "true" {
					return false, fmt.Errorf("the OS keyring is required under CI=true: %v", keyring.err)
				}
				return keyring.err == nil, nil
			case "postgres":
				globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
				if len(globbed) == 0 && os.Getenv("CI") == "true" {
					return false, fmt.Errorf("PostgreSQL is required under CI=true (apt-get install postgresql)")
				}
				return len(globbed) > 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":      cmdStatus,
			"waitfor":     cmdWaitFor,
			"waitwithin":  cmdWaitWithin,
			"waitlines":   cmdWaitLines,
			"sendsignal":  cmdSendSignal,
			"nosecret":    cmdNoSecret,
			"randomvalue": cmdRandomValue,
			"bigsecret":   cmdBigSecret,
			"vault":       cmdVault,
			"vaultauth":   cmdVaultAuth,
			"pg":          cmdPostgres,
			"fault":       cmdFault,
			"infisical": func(ts *testscript.TestScript, neg bool, args []string) {
				cmdInfisical(ts, neg, args, t)
			},
			"awssm": func(ts *testscript.TestScript, neg bool, args []string) {
				cmdAWSSM(ts, neg, args, moto.srv)
			},
		},
	}
}

type vaultKey struct{}

// scriptVault is one script's Vault dev server. It keeps its port across a
// stop and a start, as a restarted server would; a dev server keeps no data.
type scriptVault struct {
	port   int
	cmd    *exec.Cmd
	pg     *vaulttest.Postgres
	pgStop func()
}

func (v *scriptVault) addr() string { return "http://" + providertest.Addr(v.port) }

func (v *scriptVault) start(ts *testscript.TestScript) {
	bin, err := vaulttest.Binary()
	ts.Check(err)
	if v.port == 0 {
		v.port, err = freePortPair()
		ts.Check(err)
	}
	log, err := os.OpenFile(ts.MkAbs("vault.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	ts.Check(err)
	defer log.Close()
	dir := ts.MkAbs("vault-home")
	ts.Check(os.MkdirAll(dir, 0o700))
	v.cmd = exec.Command(bin, "server", "-dev", "-dev-root-token-id="+vaulttest.RootToken, "-dev-listen-address="+providertest.Addr(v.port))
	v.cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	v.cmd.Stdout, v.cmd.Stderr = log, log
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	ts.Check(v.cmd.Start())
	ts.Setenv("VAULT_ADDR", v.addr())
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := v.client()
		if err == nil {
			if h, err := c.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("vault did not become healthy on %s", v.addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v *scriptVault) stop() {
	if v.cmd != nil {
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = v.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		v.cmd = nil
	}
	if v.pgStop != nil {
		v.pgStop()
		v.pgStop = nil
	}
}

// unseal unseals a dev server with the key it printed at start.
func (v *scriptVault) unseal(ts *testscript.TestScript) {
	// The last key: a restarted dev server is a new one with a new key.
	keys := regexp.MustCompile(`Unseal Key: (\S+)`).FindAllStringSubmatch(ts.ReadFile("vault.log"), -1)
	if keys == nil {
		ts.Fatalf("vault.log holds no unseal key")
	}
	c, err := v.client()
	ts.Check(err)
	st, err := c.Sys().Unseal(keys[len(keys)-1][1])
	ts.Check(err)
	if st.Sealed {
		ts.Fatalf("vault is still sealed after unseal")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if h, err := c.Sys().Health(); err == nil && !h.Sealed && !h.Standby {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("vault is not active 10s after unseal")
		}
	}
}

func (v *scriptVault) client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = v.addr()
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(vaulttest.RootToken)
	return c, nil
}

// setupDatabase enables the database engine over PostgreSQL with a role
// app whose credentials are leased for ttl, renewable up to maxTTL.
func setupDatabase(c *api.Client, url, ttl, maxTTL string) error {
	if err := c.Sys().Mount("database", &api.MountInput{Type: "database"}); err != nil {
		return err
	}
	if _, err := c.Logical().Write("database/config/pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "allowed_roles": "app",
		"connection_url": url, "username": "postgres", "password": "unused",
		"verify_connection": true,
	}); err != nil {
		return err
	}
	_, err := c.Logical().Write("database/roles/app", map[string]any{
		"db_name":             "pg",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl":         ttl, "max_ttl": maxTTL,
	})
	return err
}

// vault start|stop|seal|unseal|put PATH K=V...|database TTL MAXTTL drives
// the script's Vault: start it (again, on the same port), stop it, seal or
// unseal it, write a KV v2 secret, or set up the database engine over a
// fresh PostgreSQL (its port in $PGPORT) with a role `app` whose leases
// last TTL, renewable up to MAXTTL.
func cmdVault(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: vault start|stop|seal|unseal|put PATH K=V...|database TTL MAXTTL")
	}
	v := ts.Value(vaultKey{}).(*scriptVault)
	switch args[0] {
	case "start":
		v.start(ts)
	case "stop":
		if v.cmd == nil {
			ts.Fatalf("vault is not running")
		}
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGTERM)
		_ = v.cmd.Wait()
		v.cmd = nil
	case "seal":
		c, err := v.client()
		ts.Check(err)
		ts.Check(c.Sys().Seal())
	case "unseal":
		v.unseal(ts)
	case "put":
		if len(args) < 3 {
			ts.Fatalf("usage: vault put PATH K=V...")
		}
		data := map[string]any{}
		for _, kv := range args[2:] {
			k, val, _ := strings.Cut(kv, "=")
			data[k] = val
		}
		c, err := v.client()
		ts.Check(err)
		mount, path, _ := strings.Cut(args[1], "/")
		_, err = c.KVv2(mount).Put(context.Background(), path, data)
		ts.Check(err)
	case "database":
		if len(args) != 3 {
			ts.Fatalf("usage: vault database TTL MAXTTL")
		}
		pg, stop, err := vaulttest.StartPostgres()
		ts.Check(err)
		v.pg, v.pgStop = pg, stop
		ts.Setenv("PGPORT", strconv.Itoa(pg.Port))
		c, err := v.client()
		ts.Check(err)
		ts.Check(setupDatabase(c, pg.URL(), args[1], args[2]))
	default:
		ts.Fatalf("unknown vault command %q", args[0])
	}
}

// awssm create NAME VALUE|put NAME VALUE|stage NAME VALUE|promote NAME:
// create a secret, write a new current value (a rotation in one step),
// stage a new value as AWSPENDING (a rotation in progress), or promote the
// pending version to AWSCURRENT (the rotation's last step).
func cmdAWSSM(ts *testscript.TestScript, neg bool, args []string, srv *mototest.Server) {
	if neg || len(args) < 2 || srv == nil {
		ts.Fatalf("usage: awssm create|put|stage|promote NAME [VALUE] (needs [moto])")
	}
	for k, v := range srv.Env() {
		ts.Setenv(k, v)
	}
	ctx := context.Background()
	c := srv.Client()
	name := args[1]
	switch args[0] {
	case "create":
		_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(args[2])})
		ts.Check(err)
	case "stage":
		out, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(name), SecretString: aws.String(args[2]), VersionStages: []string{"AWSPENDING"},
		})
		ts.Check(err)
		ts.Setenv("PENDING_"+strings.NewReplacer("/", "_", "-", "_").Replace(name), aws.ToString(out.VersionId))
	case "put":
		_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(args[2])})
		ts.Check(err)
	case "promote":
		d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		ts.Check(err)
		var current, pending string
		for id, stages := range d.VersionIdsToStages {
			for _, s := range stages {
				switch s {
				case "AWSCURRENT":
					current = id
				case "AWSPENDING":
					pending = id
				}
			}
		}
		if pending == "" {
			ts.Fatalf("%s has no AWSPENDING version", name)
		}
		_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT"),
			MoveToVersionId: aws.String(pending), RemoveFromVersionId: aws.String(current),
		})
		ts.Check(err)
	default:
		ts.Fatalf("unknown awssm command %q", args[0])
	}
}

// waitwithin DURATION FILE REGEXP waits for a line of FILE to match REGEXP
// and fails if that takes longer than DURATION: the bound is what the
// script asserts. The time it took is logged, for -v.
func cmdWaitWithin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitwithin DURATION FILE REGEXP")
	}
	limit, err := time.ParseDuration(args[0])
	ts.Check(err)
	re, err := regexp.Compile("(?m)" + args[2])
	ts.Check(err)
	start := time.Now()
	for time.Since(start) < limit+10*time.Second {
		if b, err := os.ReadFile(ts.MkAbs(args[1])); err == nil && re.Match(b) {
			took := time.Since(start)
			if took > limit {
				ts.Fatalf("%s matched %q after %v, want within %v", args[1], args[2], took.Round(time.Millisecond), limit)
			}
			ts.Logf("%s matched %q after %v (limit %v)", args[1], args[2], took.Round(time.Millisecond), limit)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(ts.MkAbs(args[1]))
	ts.Fatalf("%s does not match %q; it holds %q", args[1], args[2], b)
}

// freePortPair finds a loopback port p such that p and p+1 are free: a
// Vault dev server takes the next port for its cluster listener. It looks
// below Linux's ephemeral range (32768 and up): there outgoing connections
// take every other port and hold it in TIME_WAIT, so on a busy machine the
// neighbour of a port the kernel hands out is seldom free.
func freePortPair() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", providertest.Addr(port))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", providertest.Addr(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free pair of loopback ports")
}

// waitlines N FILE REGEXP waits up to twenty seconds for N lines of FILE to
// match REGEXP.
func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitlines N FILE REGEXP")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	re, err := regexp.Compile("(?m)" + args[2])
	ts.Check(err)
	var got int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(ts.MkAbs(args[1]))
		if got = len(re.FindAll(b, -1)); got >= n {
			return
		}
	}
	ts.Fatalf("%s has %d lines matching %q after 20s, want %d", args[1], got, args[2], n)
}

// Package vaulttest starts real servers for the Vault provider's tests: a
// Vault dev server (the real binary, built by scripts/build-vault.sh) and a
// PostgreSQL cluster on loopback for the database secrets engine.
//
// Both are meant to be started once per test package, from TestMain, and
// shared: StartVault and StartPostgres return a stop function instead of
// registering cleanups. A test that needs a server that could not start
// calls Need, which skips on a developer's machine and fails under CI=true.
package vaulttest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers/providertest"
)

// RootToken is the dev server's root token.
const RootToken = "root"

// vaultVersion is the version scripts/build-vault.sh builds.
const vaultVersion = "1.21.0"

// Binary returns the path of the vault binary: $SECRETRUN_VAULT_BIN, else
// where scripts/build-vault.sh caches it.
func Binary() (string, error) {
	if p := os.Getenv("SECRETRUN_VAULT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SECRETRUN_VAULT_BIN: %w", err)
		}
		return p, nil
	}
	cache := os.Getenv("SECRETRUN_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "secretrun")
	}
	p := filepath.Join(cache, "vault-"+vaultVersion, "vault")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no vault binary (set SECRETRUN_VAULT_BIN or run scripts/build-vault.sh): %w", err)
	}
	return p, nil
}

// Vault is a running dev server.
type Vault struct {
	// Addr is the server's URL, http://127.0.0.1:PORT, or https:// when it
	// was started with TLS.
	Addr string
	// CACert is the PEM file of the CA that signed a TLS server's
	// certificate (for 127.0.0.1 and localhost), for VAULT_CACERT or
	// ca_cert; empty without TLS.
	CACert string
	// Root is a client with the root token, for setting things up.
	Root *api.Client
}

// StartVault starts `vault server -dev` on a free loopback port (it also
// takes the next port, for its cluster listener) and waits until it is
// healthy. KV v2 is mounted at secret/.
func StartVault() (*Vault, func(), error) { return startVault(false) }

// StartVaultTLS is StartVault with `-dev-tls`: the server listens for HTTPS
// only, with a certificate from a CA of its own, whose certificate is
// Vault.CACert.
func StartVaultTLS() (*Vault, func(), error) { return startVault(true) }

func startVault(withTLS bool) (*Vault, func(), error) {
	bin, err := Binary()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "vaulttest-")
	if err != nil {
		return nil, nil, err
	}
	port, err := freePortPair()
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "vault.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	defer logFile.Close()
	args := []string{"server", "-dev", "-dev-root-token-id=" + RootToken, "-dev-listen-address=" + providertest.Addr(port)}
	v := &Vault{Addr: "http://" + providertest.Addr(port)}
	if withTLS {
		certs := filepath.Join(dir, "tls")
		if err := os.Mkdir(certs, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+certs)
		v.Addr = "https://" + providertest.Addr(port)
		v.CACert = filepath.Join(certs, "vault-ca.pem")
	}
	cmd := exec.Command(bin, args...)
	// A home of its own: the dev server writes ~/.vault-token. No VAULT_*
	// variables of the developer's leak in.
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	if err := v.waitHealthy(60 * time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "vault.log"))
		stop()
		return nil, nil, fmt.Errorf("vault dev server did not become healthy: %w\n%s", err, tail(string(log), 2000))
	}
	if v.Root, err = v.Client(RootToken); err != nil {
		stop()
		return nil, nil, err
	}
	return v, stop, nil
}

// Client returns a client of the server with token, unaffected by the
// VAULT_* variables of the process.
func (v *Vault) Client(token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	cfg.MaxRetries = 0
	if v.CACert != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: v.CACert}); err != nil {
			return nil, err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearNamespace()
	c.SetToken(token)
	return c, nil
}

func (v *Vault) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		if v.CACert != "" && client.Transport == nil {
			// The server writes its CA before it listens.
			pem, err := os.ReadFile(v.CACert)
			roots := x509.NewCertPool()
			if err != nil || !roots.AppendCertsFromPEM(pem) {
				last = fmt.Errorf("CA certificate %s not written yet: %v", v.CACert, err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
		}
		resp, err := client.Get(v.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("sys/health: HTTP %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// freePortPair finds a loopback port p such that p and p+1 are free.
func freePortPair() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", providertest.Addr(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free pair of loopback ports")
}

// Postgres is a running PostgreSQL cluster on loopback, with trust
// authentication for the superuser postgres and password authentication
// (SCRAM) for every other role, so that a role's password and its VALID
// UNTIL, which Vault's database engine sets from the lease, are enforced.
type Postgres struct {
	Port int
	bin  string
}

// URL is a connection URL for Vault's database engine, with the
// {{username}} and {{password}} templates Vault fills in.
func (pg *Postgres) URL() string {
	return fmt.Sprintf("postgresql://{{username}}:{{password}}@127.0.0.1:%d/postgres?sslmode=disable", pg.Port)
}

// Query runs sql with psql as postgres and returns its unaligned output.
func (pg *Postgres) Query(sql string) (string, error) {
	out, err := exec.Command(filepath.Join(pg.bin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port),
		"-U", "postgres", "-d", "postgres", "-tAc", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql: %w: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Login connects over TCP as user with password and runs a query, as an
// application given leased credentials would.
func (pg *Postgres) Login(user, password string) error {
	cmd := exec.Command(filepath.Join(pg.bin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port),
		"-U", user, "-d", "postgres", "-w", "-tAc", "SELECT 1")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql as %s: %w: %s", user, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// hba lets postgres in without a password (Vault's connection and Query)
// and asks everyone else for theirs.
const hba = `local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
`

// StartPostgres creates a cluster in a temporary directory and starts it on
// a free loopback port. initdb refuses to run as root, so as root the
// cluster belongs to the postgres user.
func StartPostgres() (*Postgres, func(), error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return nil, nil, errors.New("no PostgreSQL server (apt-get install postgresql)")
	}
	sort.Slice(bins, func(i, j int) bool { return versionOf(bins[i]) > versionOf(bins[j]) })
	bin := filepath.Dir(bins[0])
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, nil, err
	}
	run := func(args ...string) error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(args[0]), err, tail(string(out), 2000))
		}
		return nil
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		run = func(args ...string) error {
			quoted := make([]string, len(args))
			for i, a := range args {
				quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
			}
			out, err := exec.Command("su", "postgres", "-s", "/bin/sh", "-c", strings.Join(quoted, " ")).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: %w: %s", filepath.Base(args[0]), err, tail(string(out), 2000))
			}
			return nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	data := filepath.Join(dir, "data")
	pg := &Postgres{Port: port, bin: bin}
	if err := run(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	// Rewriting the file keeps its owner, the cluster's user.
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, dir)
	if err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start"); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	stop := func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	}
	return pg, stop, nil
}

func versionOf(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Need stops a test whose server could not start: skipped locally, failed
// under CI=true.
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		providertest.Need(t, what, err)
	}
}

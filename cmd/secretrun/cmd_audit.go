package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/audit"
	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/status"
)

// observeRun gives a run its audit trail, when the config has one, and
// its status socket, once a supervised child has started. The returned
// stop writes out what is left and removes the socket.
func observeRun(d deps, f *config.File, p *config.Plan, job *inject.Job) (stop func(), err error) {
	settings, err := f.Audit(d.lookupEnv)
	if err != nil {
		return nil, err
	}
	base := describeRun(f, p, job)
	var trail *audit.Trail
	if settings.Sink != "" {
		identify(&base, f)
		sink, err := audit.Open(settings.Sink, d.stderr)
		if err != nil {
			return nil, err
		}
		trail = audit.NewTrail(sink, base, []byte(settings.FingerprintKey), func(err error) {
			fmt.Fprintf(d.stderr, "secretrun: warning: %v\n", err)
		})
	}
	var (
		// mu guards server: events come from the supervisor, the
		// renewers and the watcher, each on its own goroutine.
		mu     sync.Mutex
		server *status.Server
	)
	self := os.Getpid()
	job.Events = func(e inject.Event) {
		mu.Lock()
		defer mu.Unlock()
		if trail != nil {
			trail.Observe(e)
		}
		// Only a supervisor can answer; an exec'd child has none left.
		if e.Kind == inject.EventStart && e.PID != self && server == nil {
			s, err := status.Listen(status.Dir(d.getenv), status.Child{
				PID: self, Command: base.Command, Config: base.Config,
				Environment: base.Environment, Scope: base.Scope, Started: e.Time.UTC(),
			})
			if err != nil {
				fmt.Fprintf(d.stderr, "secretrun: warning: %v; secretrun status will not list this process\n", err)
				server = &status.Server{}
				return
			}
			server = s
		}
		if server != nil && server.Serving() {
			server.Observe(e)
		}
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if server != nil && server.Serving() {
			_ = server.Close()
		}
		if trail != nil {
			_ = trail.Close()
		}
	}, nil
}

// describeRun is what secretrun status and every audit record of this run
// say about it.
func describeRun(f *config.File, p *config.Plan, job *inject.Job) audit.Record {
	cfg := f.Name
	if abs, err := filepath.Abs(f.Name); err == nil {
		cfg = abs
	}
	command := ""
	if len(job.Args) > 0 {
		command = job.Args[0]
	}
	return audit.Record{
		PID: os.Getpid(), Command: command, Config: cfg, Environment: p.Environment, Scope: p.Scope,
	}
}

// identify adds to r what only the audit trail needs: the host, the user
// (a passwd lookup) and the config's digest, left out of every run without
// one.
func identify(r *audit.Record, f *config.File) {
	r.Host, _ = os.Hostname()
	r.User = strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		r.User = u.Username
	}
	r.ConfigDigest = f.Digest()
}

func auditCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "search the audit trail",
		Commands: []*cli.Command{{
			Name:  "match",
			Usage: "read a leaked value from standard input (hidden on a terminal) and list the audit records whose fingerprint is its",
			Description: `The fingerprints are HMAC-SHA256 under audit.fingerprint_key, which must
be the key the records were written with. The value is never an argument:
pipe it in, or type it at the prompt.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "file", Usage: "the audit trail `PATH` (default: the file of audit.sink)"},
			},
			Action: func(ctx context.Context, c *cli.Command) error {
				f, err := loadConfig(c, d)
				if err != nil {
					return err
				}
				settings, err := f.Audit(d.lookupEnv)
				if err != nil {
					return err
				}
				if settings.FingerprintKey == "" {
					return errors.New("audit match: audit.fingerprint_key is not set, so the records hold no fingerprints; set it (for instance to ${SECRETRUN_AUDIT_KEY}) before the runs to be matched")
				}
				path := c.String("file")
				if path == "" {
					var ok bool
					if path, ok = strings.CutPrefix(settings.Sink, "file:"); !ok {
						return errors.New("audit match: give the trail with --file PATH (audit.sink is not a file)")
					}
				}
				value, err := newPrompter(d).readAll("the leaked value")
				if err != nil {
					return err
				}
				if value.Reveal() == "" {
					return errors.New("audit match: no value on standard input")
				}
				trail, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("audit match: %w", err)
				}
				defer trail.Close()
				records, err := audit.Match(trail, []byte(settings.FingerprintKey), value.Reveal())
				if err != nil {
					return fmt.Errorf("audit match: %s: %w", path, err)
				}
				if len(records) == 0 {
					fmt.Fprintf(d.stderr, "secretrun: audit match: no record in %s holds this value\n", path)
					return childExit(exitFound)
				}
				tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tEVENT\tHOST\tUSER\tPID\tCHILD\tCOMMAND\tENV\tVARIABLE\tSOURCE\tVERSION")
				for _, r := range records {
					for _, s := range r.Secrets {
						child := "-"
						if r.ChildPID != 0 {
							child = strconv.Itoa(r.ChildPID)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s %s\t%s\n", r.Time.Format("2006-01-02T15:04:05Z07:00"), r.Event, r.Host, r.User, r.PID, child, r.Command, r.Environment, s.Variable, s.Provider, s.Source, orDash(s.Version))
					}
				}
				return tw.Flush()
			},
		}},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

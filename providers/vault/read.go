package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/secretrun/secretrun/providers"
)

// mountInfo is what Vault says about the secrets engine a path is under.
type mountInfo struct {
	// path is the mount's path with a trailing slash: "secret/".
	path string
	// typ is the engine: "kv", "database", "aws", ...
	typ string
	// kv is the KV version (1 or 2) for a kv mount, else 0.
	kv int
}

func (m mountInfo) String() string {
	if m.kv > 0 {
		return fmt.Sprintf("KV v%d mount %s", m.kv, m.path)
	}
	return fmt.Sprintf("%s mount %s", m.typ, m.path)
}

// mountCache remembers mounts for the run, so each mount is looked up once
// however many sources share it. Lookups are serialised per first path
// segment: concurrent reads of secret/a and secret/b wait for one lookup
// instead of racing to make two.
type mountCache struct {
	mu     sync.Mutex
	mounts []mountInfo
	locks  map[string]*sync.Mutex
}

// find returns the longest known mount that path is under.
func (m *mountCache) find(path string) (mountInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	best, found := mountInfo{}, false
	for _, mi := range m.mounts {
		if strings.HasPrefix(path+"/", mi.path) && len(mi.path) > len(best.path) {
			best, found = mi, true
		}
	}
	return best, found
}

func (m *mountCache) add(mi mountInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mounts = append(m.mounts, mi)
}

func (m *mountCache) lockFor(path string) *sync.Mutex {
	first, _, _ := strings.Cut(path, "/")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = map[string]*sync.Mutex{}
	}
	l, ok := m.locks[first]
	if !ok {
		l = &sync.Mutex{}
		m.locks[first] = l
	}
	return l
}

// mount finds the mount path is under, asking Vault as the vault CLI does
// (sys/internal/ui/mounts/PATH) when it is not known yet. When it asks and
// g is not nil, the guessed read runs alongside the lookup (see guess).
func (p *provider) mount(ctx context.Context, c *client, path string, g *guess) (mountInfo, error) {
	if mi, ok := p.mounts.find(path); ok {
		return mi, nil
	}
	l := p.mounts.lockFor(path)
	l.Lock()
	defer l.Unlock()
	if mi, ok := p.mounts.find(path); ok {
		return mi, nil
	}
	if err := p.acquire(ctx); err != nil {
		return mountInfo{}, fmt.Errorf("vault %q: read %s: %w", p.name, path, err)
	}
	s, err := c.read(g.alongside(ctx, p.conn.address), "sys/internal/ui/mounts/"+path, nil)
	p.release()
	if err != nil && statusOf(err) == 403 && ctx.Err() == nil {
		return mountInfo{}, p.noMount(ctx, c, path)
	}
	if err != nil {
		return mountInfo{}, p.describe(ctx, "read "+path+": find its mount", err)
	}
	mi := mountInfo{}
	if s != nil {
		mi.path, _ = s.Data["path"].(string)
		mi.typ, _ = s.Data["type"].(string)
	}
	if mi.path == "" {
		// Vault before 0.10.2 has no mount lookup; the CLI then assumes KV
		// v1 at the first segment, and so do we.
		first, _, _ := strings.Cut(path, "/")
		mi = mountInfo{path: first + "/", typ: "kv", kv: 1}
	} else if mi.typ == "kv" || mi.typ == "generic" {
		mi.kv = 1
		if opts, ok := s.Data["options"].(map[string]any); ok && opts["version"] == "2" {
			mi.kv = 2
		}
	}
	p.mounts.add(mi)
	return mi, nil
}

// noMount explains a refused mount lookup. Vault answers 403 both when no
// engine is mounted at a path and when the token may use nothing under it,
// so that mounts cannot be probed; the message lists the mounts this token
// can see, which is what a user needs to spot a wrong mount.
func (p *provider) noMount(ctx context.Context, c *client, path string) error {
	op := "read " + path
	if err := p.checkToken(ctx, op); err != nil {
		return err
	}
	policies, err := p.tokenPolicies(ctx)
	if err != nil && statusOf(err) == 403 {
		return p.tokenRejected(op)
	}
	if err != nil && isUnavailable(err) {
		return p.unavailable(op, err)
	}
	var visible []string
	if err := p.acquire(ctx); err == nil {
		s, err := c.read(ctx, "sys/internal/ui/mounts", nil)
		p.release()
		if err == nil && s != nil {
			if secrets, ok := s.Data["secret"].(map[string]any); ok {
				for m := range secrets {
					visible = append(visible, m)
				}
			}
		}
	}
	sort.Strings(visible)
	why := "no secrets engine is mounted there, or the token's policies grant nothing under it"
	if slices.Contains(policies, "root") {
		// A root token sees everything: the mount does not exist.
		why = "no secrets engine is mounted there"
	}
	return fmt.Errorf("vault %q: %s: %w: %s (mounts this token can see: %s; token policies: %s)",
		p.name, op, providers.ErrNotFound, why, orNone(visible), orNone(policies))
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// read reads one path, pinned to version when it is not empty.
func (p *provider) read(ctx context.Context, c *client, path, version string) (providers.Result, error) {
	g := p.guessKV2(c, path, version)
	m, err := p.mount(ctx, c, path, g)
	if err != nil {
		g.discard()
		return providers.Result{}, err
	}
	if ok, s, err := g.answer(m); ok {
		return p.kv2Result(ctx, path, version, m, s, err)
	}
	switch {
	case m.kv == 2:
		return p.readKV2(ctx, c, path, version, m)
	case version != "":
		return providers.Result{}, fmt.Errorf("vault %q: read %s: version: %s has no versions; only KV v2 mounts do", p.name, path, m)
	case m.kv == 1:
		return p.readPlain(ctx, c, path, m)
	}
	return p.readLeased(ctx, c, path, m)
}

// relative is path inside mount m, or an error when path names the mount
// itself.
func (p *provider) relative(path string, m mountInfo) (string, error) {
	rel := strings.TrimPrefix(path+"/", m.path)
	rel = strings.TrimSuffix(rel, "/")
	if rel == "" {
		return "", fmt.Errorf("vault %q: read %s: this is the %s itself; name a secret in it, such as %smyapp", p.name, path, m, m.path)
	}
	return rel, nil
}

func (p *provider) readKV2(ctx context.Context, c *client, path, version string, m mountInfo) (providers.Result, error) {
	rel, err := p.relative(path, m)
	if err != nil {
		return providers.Result{}, err
	}
	if err := p.acquire(ctx); err != nil {
		return providers.Result{}, fmt.Errorf("vault %q: %s: %w", p.name, kv2Op(path, version), err)
	}
	s, err := c.read(ctx, m.path+"data/"+rel, versionParams(version))
	p.release()
	return p.kv2Result(ctx, path, version, m, s, err)
}

func kv2Op(path, version string) string {
	if version != "" {
		return "read " + path + " version " + version
	}
	return "read " + path
}

func versionParams(version string) url.Values {
	if version == "" {
		return nil
	}
	return url.Values{"version": {version}}
}

// kv2Result interprets the answer to a read of a KV v2 secret's data.
func (p *provider) kv2Result(ctx context.Context, path, version string, m mountInfo, s *secret, err error) (providers.Result, error) {
	op := kv2Op(path, version)
	rel, _ := p.relative(path, m)
	if err != nil {
		return providers.Result{}, p.describe(ctx, op, err)
	}
	if s == nil {
		return providers.Result{}, fmt.Errorf("vault %q: %s: %w (no secret %s in %s)", p.name, op, providers.ErrNotFound, rel, m)
	}
	meta, _ := s.Data["metadata"].(map[string]any)
	got := jsonText(meta["version"])
	data, ok := s.Data["data"].(map[string]any)
	if !ok {
		// Vault answers 404 with the metadata when the version was deleted
		// or destroyed, which the client hands back as a secret.
		which := "the latest version"
		if version != "" {
			which = "version"
		}
		if destroyed, _ := meta["destroyed"].(bool); destroyed {
			return providers.Result{}, fmt.Errorf("vault %q: %s: %w: %s (%s) was destroyed; pin an earlier version with `version:` or write a new one",
				p.name, op, providers.ErrNotFound, which, got)
		}
		if at, _ := meta["deletion_time"].(string); at != "" {
			return providers.Result{}, fmt.Errorf("vault %q: %s: %w: %s (%s) was deleted at %s; undelete it (vault kv undelete -versions=%s %s) or pin an earlier version with `version:`",
				p.name, op, providers.ErrNotFound, which, got, at, got, path)
		}
		return providers.Result{}, fmt.Errorf("vault %q: %s: %w (no data in %s)", p.name, op, providers.ErrNotFound, m)
	}
	return providers.Result{Fields: fields(data), Version: got}, nil
}

// readPlain reads a KV v1 secret, or any path without a lease.
func (p *provider) readPlain(ctx context.Context, c *client, path string, m mountInfo) (providers.Result, error) {
	s, err := p.logicalRead(ctx, c, path, m)
	if err != nil {
		return providers.Result{}, err
	}
	return providers.Result{Fields: fields(s.Data)}, nil
}

func (p *provider) logicalRead(ctx context.Context, c *client, path string, m mountInfo) (*secret, error) {
	if _, err := p.relative(path, m); err != nil {
		return nil, err
	}
	if err := p.acquire(ctx); err != nil {
		return nil, fmt.Errorf("vault %q: read %s: %w", p.name, path, err)
	}
	s, err := c.read(ctx, path, nil)
	p.release()
	if err != nil {
		if statusOf(err) == 404 {
			return nil, fmt.Errorf("vault %q: read %s: %w (in %s)", p.name, path, providers.ErrNotFound, m)
		}
		return nil, p.describe(ctx, "read "+path, err)
	}
	if s == nil {
		return nil, fmt.Errorf("vault %q: read %s: %w (in %s)", p.name, path, providers.ErrNotFound, m)
	}
	return s, nil
}

// fields turns a secret's data into fields. Strings are taken as they are;
// numbers, booleans and null become their JSON text; objects and arrays
// their JSON text too, marked Nested.
func fields(data map[string]any) map[string]providers.Field {
	out := make(map[string]providers.Field, len(data))
	for k, v := range data {
		switch x := v.(type) {
		case string:
			out[k] = providers.Field{Value: providers.NewSecret(x)}
		case map[string]any, []any:
			out[k] = providers.Field{Value: providers.NewSecret(jsonText(x)), Nested: true}
		default:
			out[k] = providers.Field{Value: providers.NewSecret(jsonText(x))}
		}
	}
	return out
}

// jsonText renders v as compact JSON without HTML escaping, so that a value
// such as {"url":"a&b"} reaches the child as it was stored.
func jsonText(v any) string {
	if s, ok := v.(json.Number); ok {
		return s.String()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Fetch reads every source. Sources that read the same path (and version)
// share one read: two sources mapping different fields of database/creds/app
// must get the same username and password, not two leases. Reads run
// concurrently, at most max_concurrency requests at a time. A cached token
// that Vault rejects costs a login and a second try, not an error.
func (p *provider) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	results, err := p.fetch(ctx, sources)
	if p.retryRejected(ctx, err) {
		return p.fetch(ctx, sources)
	}
	return results, err
}

func (p *provider) fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	c, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	results := make([]providers.Result, len(sources))
	err = runJobs(ctx, group(sources), func(ctx context.Context, j *job) error {
		res, err := p.read(ctx, c, j.path, j.version)
		if err != nil && fatal(err) {
			return err
		}
		res.Err = err
		for _, i := range j.idx {
			results[i] = res
			if res.Fields != nil {
				// Each source gets its own map: the caller may edit it.
				results[i].Fields = cloneFields(res.Fields)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

func cloneFields(f map[string]providers.Field) map[string]providers.Field {
	out := make(map[string]providers.Field, len(f))
	for k, v := range f {
		out[k] = v
	}
	return out
}

// runJobs runs do for every job at once; max_concurrency is enforced by
// the requests themselves. The first error cancels the others and is
// returned.
func runJobs(ctx context.Context, jobs []*job, do func(context.Context, *job) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, j := range jobs {
		wg.Go(func() {
			if err := do(ctx, j); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// job is one distinct read, with the indexes of the sources it serves.
type job struct {
	path, version string
	idx           []int
}

func group(sources []*providers.Source) []*job {
	byKey := map[string]*job{}
	var jobs []*job
	for i, src := range sources {
		path := src.Ref.String()
		key := path + "\x00" + src.Version
		j, ok := byKey[key]
		if !ok {
			j = &job{path: path, version: src.Version}
			byKey[key] = j
			jobs = append(jobs, j)
		}
		j.idx = append(j.idx, i)
	}
	return jobs
}

// versionOf labels the current version of one path without reading values.
func (p *provider) versionOf(ctx context.Context, c *client, path, version string) (string, error) {
	m, err := p.mount(ctx, c, path, nil)
	if err != nil {
		if fatal(err) {
			return "", err
		}
		return "", nil
	}
	switch {
	case m.kv == 2 && version != "":
		// A pinned version does not change.
		return version, nil
	case m.kv == 2:
		return p.kv2Label(ctx, c, path, m)
	case m.kv == 1:
		// KV v1 keeps no versions: the caller compares values.
		return "", nil
	}
	return p.leaseLabel(path), nil
}

// absent labels a KV v2 secret that does not exist (any more).
const absent = "absent"

// kv2Label is the secret's current_version from its metadata, with a mark
// when that version is deleted or destroyed: deleting the latest version
// changes what a read returns without changing current_version.
func (p *provider) kv2Label(ctx context.Context, c *client, path string, m mountInfo) (string, error) {
	if _, denied := p.noMetadata.Load(path); denied {
		return "", nil
	}
	rel, err := p.relative(path, m)
	if err != nil {
		return "", nil
	}
	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	s, err := c.read(ctx, m.path+"metadata/"+rel, nil)
	p.release()
	switch {
	case err != nil && statusOf(err) == 403 && ctx.Err() == nil:
		if err := p.checkToken(ctx, "read the metadata of "+path); err != nil {
			return "", err
		}
		// A policy may grant data/ but not metadata/; then values are
		// compared instead.
		p.noMetadata.Store(path, true)
		return "", nil
	case err != nil:
		err = p.describe(ctx, "read the metadata of "+path, err)
		if fatal(err) {
			return "", err
		}
		return "", nil
	case s == nil:
		return absent, nil
	}
	current := jsonText(s.Data["current_version"])
	versions, _ := s.Data["versions"].(map[string]any)
	if v, ok := versions[current].(map[string]any); ok {
		if destroyed, _ := v["destroyed"].(bool); destroyed {
			return current + "-destroyed", nil
		}
		if at, _ := v["deletion_time"].(string); at != "" {
			return current + "-deleted", nil
		}
	}
	return current, nil
}

// Versions labels each source's current version cheaply: the metadata's
// current_version for KV v2, "" for KV v1 (cannot tell: compare values), and
// a lease generation for leased secrets, which asks Vault nothing. It renews
// nothing; Renew does.
func (p *provider) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	c, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(sources))
	err = runJobs(ctx, group(sources), func(ctx context.Context, j *job) error {
		label, err := p.versionOf(ctx, c, j.path, j.version)
		if err != nil {
			return err
		}
		for _, i := range j.idx {
			out[i] = label
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

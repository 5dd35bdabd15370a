package awssm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

const (
	// namesPerList is the most values one ListSecrets filter takes.
	namesPerList = 10
	// absent labels a secret that does not exist, so that its creation is
	// a change.
	absent = "absent"
)

// Versions labels each source with the version id its stage points at
// (AWSCURRENT unless pinned), read from the staging labels that ListSecrets
// returns for many secrets per call; no value is read. A version staged as
// AWSPENDING by a rotation in progress changes nothing until it is promoted
// to AWSCURRENT. A secret_prefix source's label covers the names found and
// each one's current version, so an added or removed secret is a change.
func (p *provider) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	var ids, prefixes []string
	for _, src := range sources {
		r, ok := src.Ref.(*ref)
		if !ok {
			return nil, fmt.Errorf("%s: source at %s was not parsed by this provider", p, src.Pos)
		}
		switch {
		case r.prefix != "":
			prefixes = append(prefixes, r.prefix)
		case r.versionID == "":
			ids = append(ids, r.secret)
		}
	}
	stages, err := p.stageMaps(ctx, c, awsconf.Unique(ids))
	if err != nil {
		return nil, err
	}
	prefixed, err := p.prefixMaps(ctx, c, awsconf.Unique(prefixes))
	if err != nil {
		return nil, err
	}

	out := make([]string, len(sources))
	for i, src := range sources {
		r := src.Ref.(*ref)
		switch {
		case r.prefix != "":
			out[i] = prefixed[r.prefix]
		case r.versionID != "":
			// A version's value never changes.
			out[i] = r.versionID
		default:
			out[i] = stages[r.secret].label(first(r.stage, stageCurrent))
		}
	}
	return out, nil
}

// stageMap is one secret's version ids by staging label; known is false
// when it could not be read, and the label is then empty: the watch loop
// falls back to fetching and comparing.
type stageMap struct {
	known   bool
	missing bool
	ids     map[string][]string
}

func (m stageMap) label(stage string) string {
	switch {
	case !m.known:
		return ""
	case m.missing:
		return absent
	}
	for id, stages := range m.ids {
		if slices.Contains(stages, stage) {
			return id
		}
	}
	return absent
}

// stageMaps finds the staging labels of ids with ListSecrets, filtering on
// up to ten names per call, and with DescribeSecret for the ids the listing
// did not show (a secret created a moment ago, or ListSecrets not allowed).
func (p *provider) stageMaps(ctx context.Context, c *conn, ids []string) (map[string]stageMap, error) {
	out := make(map[string]stageMap, len(ids))
	var mu sync.Mutex
	if !c.noList.Load() && len(ids) > 0 {
		var groups [][]string
		for chunk := range slices.Chunk(ids, namesPerList) {
			groups = append(groups, chunk)
		}
		var fatal error
		parallel(len(groups), func(i int) {
			var names []string
			for _, id := range groups[i] {
				names = append(names, nameOf(id))
			}
			entries, err := p.list(ctx, c, names)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if wholeBackend(err) && fatal == nil {
					fatal = fmt.Errorf("%s: list secrets (%s): %w", p, c.where(), err)
				} else if errors.Is(err, providers.ErrDenied) {
					c.noList.Store(true)
				}
				return
			}
			for _, e := range entries {
				for _, id := range groups[i] {
					if matches(id, e.Name, e.ARN) {
						out[id] = stageMap{known: true, ids: e.SecretVersionsToStages}
					}
				}
			}
		})
		if fatal != nil {
			return nil, fatal
		}
	}

	var rest []string
	for _, id := range ids {
		if !out[id].known {
			rest = append(rest, id)
		}
	}
	var fatal error
	parallel(len(rest), func(i int) {
		m, err := p.describe(ctx, c, rest[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil && wholeBackend(err) && fatal == nil {
			fatal = fmt.Errorf("%s: describe %s (%s): %w", p, rest[i], c.where(), err)
		}
		out[rest[i]] = m
	})
	return out, fatal
}

func (p *provider) describe(ctx context.Context, c *conn, id string) (stageMap, error) {
	d, err := c.sm.describeSecret(ctx, id)
	if err != nil {
		err = classify(ctx, err)
		if errors.Is(err, providers.ErrNotFound) {
			return stageMap{known: true, missing: true}, nil
		}
		return stageMap{}, err
	}
	if d.DeletedDate != nil {
		return stageMap{known: true, missing: true}, nil
	}
	return stageMap{known: true, ids: d.VersionIdsToStages}, nil
}

// prefixMaps labels each prefix with a digest of the names found and their
// current versions.
func (p *provider) prefixMaps(ctx context.Context, c *conn, prefixes []string) (map[string]string, error) {
	out := make(map[string]string, len(prefixes))
	var mu sync.Mutex
	var fatal error
	parallel(len(prefixes), func(i int) {
		entries, err := p.list(ctx, c, prefixes[i:i+1])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if wholeBackend(err) && fatal == nil {
				fatal = fmt.Errorf("%s: list secrets %s* (%s): %w", p, prefixes[i], c.where(), err)
			}
			out[prefixes[i]] = ""
			return
		}
		var lines []string
		for _, e := range entries {
			if name := e.Name; strings.HasPrefix(name, prefixes[i]) {
				m := stageMap{known: true, ids: e.SecretVersionsToStages}
				lines = append(lines, name+"\x00"+m.label(stageCurrent))
			}
		}
		if len(lines) == 0 {
			out[prefixes[i]] = absent
			return
		}
		slices.Sort(lines)
		sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		out[prefixes[i]] = hex.EncodeToString(sum[:12])
	})
	return out, fatal
}

// list returns the secrets whose names start with one of names, all pages
// of them. The service matches loosely; callers match exactly.
func (p *provider) list(ctx context.Context, c *conn, names []string) ([]secretInfo, error) {
	out, err := c.sm.listSecrets(ctx, names, 100)
	if err != nil {
		return nil, classify(ctx, err)
	}
	return out, nil
}

// trimARNSuffix drops the "-" and six letters or digits AWS appends to a
// name in an ARN, when name ends so.
func trimARNSuffix(name string) string {
	const n = len("-123456")
	if len(name) < n || name[len(name)-n] != '-' {
		return name
	}
	for _, c := range []byte(name[len(name)-n+1:]) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return name
		}
	}
	return name[:len(name)-n]
}

// nameOf gives the name, or a prefix of it, that an id designates: an ARN
// ends with the name and perhaps the six random characters, and since the
// name filter matches prefixes, dropping what may be the suffix is safe.
func nameOf(id string) string {
	if !strings.HasPrefix(id, "arn:") {
		return id
	}
	_, name, ok := strings.Cut(id, ":secret:")
	if !ok {
		return id
	}
	return trimARNSuffix(name)
}

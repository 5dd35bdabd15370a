package awsssm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/secretrun/secretrun/providers"
)

// absent labels a parameter or path that does not exist, so that its
// creation is a change, and its deletion too.
const absent = "absent"

// Versions labels each parameter source with the version number its name
// or selector points at, and each path source with a digest of the names
// and version numbers below it. It makes the calls Fetch makes, without
// decryption: no KMS request, and no SecureString value in the answers.
func (p *provider) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	_, refs, listed, reads, err := p.readSources(ctx, sources, false)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		if r.path != "" {
			out[i] = pathLabel(listed[pathKey{r.path, r.recursive}])
			continue
		}
		rd := reads[r.id()]
		switch {
		case errors.Is(rd.err, providers.ErrNotFound):
			out[i] = absent
		case rd.err != nil:
			// Cannot tell (denied, say): the watch loop fetches and
			// compares values instead.
			out[i] = ""
		default:
			out[i] = strconv.FormatInt(rd.p.version, 10)
		}
	}
	return out, nil
}

func pathLabel(l listing) string {
	switch {
	case l.err != nil:
		return ""
	case len(l.params) == 0:
		return absent
	}
	var b strings.Builder
	for _, prm := range l.params {
		b.WriteString(prm.name)
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(prm.version, 10))
		b.WriteByte('\n')
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:12])
}

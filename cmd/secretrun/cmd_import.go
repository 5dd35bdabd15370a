package main

import (
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/internal/dotenv"
	"github.com/secretrun/secretrun/providers"
)

// importStarters are the provider types `import --to TYPE` can add an
// instance of when secretrun.yaml has none of that name, with the settings
// such an instance needs; the others come from the environment as at run
// time (VAULT_ADDR, AWS_REGION, ...).
var importStarters = map[string]func(configDir string) []providers.SourceSetting{
	"keyring": func(configDir string) []providers.SourceSetting {
		return []providers.SourceSetting{{Key: "service", Value: filepath.Base(configDir)}}
	},
	"vault":               nil,
	"aws-secrets-manager": nil,
	"aws-ssm":             nil,
}

func importCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "move a .env file's values into a secret manager and add the source that reads them to secretrun.yaml",
		ArgsUsage: "FILE",
		Description: `Reads FILE as a dotenv file (quotes, export, multi-line values, comments,
${VAR} references), writes its values to the provider named by --to, adds
the source that reads them to the environment (--env, default_environment,
or dev in a new secretrun.yaml) and reads every value back to check it
before --remove deletes FILE. No value is ever printed.

  keyring              one item per variable in the provider's service
  vault                one KV secret (v1 or v2) at --path
  aws-secrets-manager  one JSON secret named --secret
  aws-ssm              one SecureString per variable below --path

--to names a provider of secretrun.yaml, or one of these types to add an
instance of that name. An existing secret, item or parameter, or a source
of the environment that already reads from there, is an error unless
--force; secretrun.yaml is created if there is none and otherwise edited in
place, its comments and layout kept.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "provider `NAME` to write to: one of secretrun.yaml, or a type (keyring, vault, aws-secrets-manager, aws-ssm) to add"},
			&cli.StringFlag{Name: "path", Usage: "Vault KV secret or SSM hierarchy `P` to write"},
			&cli.StringFlag{Name: "secret", Usage: "Secrets Manager secret `S` to write"},
			&cli.BoolFlag{Name: "remove", Usage: "delete FILE once every value reads back as written"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing secret, item, parameter or source"},
		},
		Action: func(ctx context.Context, c *cli.Command) error { return runImport(ctx, c, d) },
	}
}

// importOptions are the arguments of an import, wherever on the command
// line they were given.
type importOptions struct {
	file, to           string
	dest               providers.Destination
	remove, force      bool
	config, env, scope string
}

// parseImport reads the import's arguments. Flags end at a command's first
// argument (see shapeCommands), but `secretrun import .env --to vault` is the
// natural order, so the flags after FILE are parsed here, with the same
// names.
func parseImport(c *cli.Command) (importOptions, error) {
	tail := goflag.NewFlagSet("import", goflag.ContinueOnError)
	tail.SetOutput(io.Discard)
	primary := map[string]string{}
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			primary[n] = f.Names()[0]
			if _, isBool := f.(*cli.BoolFlag); isBool {
				tail.Bool(n, false, "")
			} else {
				tail.String(n, "", "")
			}
		}
	}
	var files []string
	for rest := c.Args().Slice(); len(rest) > 0; {
		if err := tail.Parse(rest); err != nil {
			return importOptions{}, fmt.Errorf("%v; see `secretrun import --help`", err)
		}
		if rest = tail.Args(); len(rest) > 0 {
			files, rest = append(files, rest[0]), rest[1:]
		}
	}
	given := map[string]string{}
	tail.Visit(func(f *goflag.Flag) { given[primary[f.Name]] = f.Value.String() })
	str := func(name string) string {
		if v, ok := given[name]; ok {
			return v
		}
		return flag(c, name)
	}
	boolean := func(name string) bool {
		if v, ok := given[name]; ok {
			return v == "true"
		}
		return c.Bool(name)
	}
	o := importOptions{
		to:     str("to"),
		dest:   providers.Destination{Path: str("path"), Secret: str("secret")},
		remove: boolean("remove"),
		force:  boolean("force"),
		config: str("config"),
		env:    str("env"),
		scope:  str("scope"),
	}
	switch {
	case len(files) != 1:
		return o, errors.New("import takes one FILE, such as .env; see `secretrun import --help`")
	case o.to == "":
		return o, errors.New("import: name the provider to write to with --to, such as --to vault; see `secretrun import --help`")
	case o.dest.Path != "" && o.dest.Secret != "":
		return o, errors.New("import: give --path or --secret, not both")
	}
	o.file = files[0]
	return o, nil
}

func runImport(ctx context.Context, c *cli.Command, d deps) error {
	o, err := parseImport(c)
	if err != nil {
		return err
	}
	to, dest, force, envFile := o.to, o.dest, o.force, o.file
	values, err := readDotenv(envFile)
	if err != nil {
		return err
	}
	if err := inject.ProtectMemory(); err != nil {
		d.providerEnv().Warn("cannot mark secretrun non-dumpable: %v", err)
	}
	names := make([]string, len(values))
	for i, v := range values {
		names[i] = v.Name
	}

	cfg, err := loadOrStartConfig(o, d)
	if err != nil {
		return err
	}
	sel := config.Selection{Environment: cfg.env, Scope: o.scope, Lookup: d.lookupEnv}
	text := cfg.text
	if !cfg.file.HasProvider(to) {
		starter, ok := importStarters[to]
		if !ok {
			return fmt.Errorf("import: provider %q is not defined under providers: in %s; name one of its providers, or a type to add one of: keyring, vault, aws-secrets-manager, aws-ssm", to, cfg.name)
		}
		var settings []providers.SourceSetting
		if starter != nil {
			settings = starter(cfg.dir)
		}
		if text, _, err = config.AddProvider(cfg.name, text, to, to, settings); err != nil {
			return err
		}
	}
	withProvider, err := config.Parse(cfg.name, text)
	if err != nil {
		return err
	}
	prov, err := withProvider.Provider(d.registry, sel, to, d.providerEnv())
	if err != nil {
		return err
	}
	w, ok := prov.(providers.Writer)
	if !ok {
		return fmt.Errorf("import: provider %q cannot be written to; import writes to providers of type keyring, vault, aws-secrets-manager and aws-ssm", to)
	}
	settings, err := w.ImportSource(dest, names)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	added, err := config.AddSource(cfg.name, text, config.NewSource{Environment: cfg.env, Provider: to, Settings: settings, Replace: force})
	var exists *config.ExistingSourceError
	if errors.As(err, &exists) {
		return fmt.Errorf("import: %v; pass --force to replace that source", err)
	}
	if err != nil {
		return err
	}

	// The edited file is planned as a run would plan it, so the source
	// that is verified is the one the config now holds.
	edited, err := config.Parse(cfg.name, added.Text)
	if err != nil {
		return err
	}
	plan, err := edited.Plan(d.registry, sel, d.providerEnv())
	if err != nil {
		return err
	}
	defer closeProviders(plan, d)
	var src *providers.Source
	at := fmt.Sprintf("%s:%d:", cfg.name, added.Line)
	for _, s := range plan.Sources {
		if s.Provider == to && strings.HasPrefix(s.Pos, at) {
			src = s
		}
	}
	if src == nil {
		return fmt.Errorf("import: the source added at %s is not in the plan of environment %s", strings.TrimSuffix(at, ":"), cfg.env)
	}
	w = plan.Providers[to].(providers.Writer)
	where := fmt.Sprintf("%s %q at %s", plan.Types[to], to, src.Ref)

	if found, err := w.Existing(ctx, src, names); err != nil {
		return fmt.Errorf("import: nothing written, %s left as it is: %w", envFile, err)
	} else if len(found) > 0 && !force {
		return fmt.Errorf("import: nothing written: %s already holds %s; pass --force to replace", where, strings.Join(found, ", "))
	}
	written, err := w.Write(ctx, src, values, force)
	if err != nil {
		return writeFailure(envFile, cfg.name, where, names, written, err)
	}
	if err := verifyImport(ctx, plan.Providers[to], src, values); err != nil {
		return fmt.Errorf("import: wrote %s to %s, but %w; %s left as it is and %s not changed", strings.Join(names, ", "), where, err, envFile, cfg.name)
	}
	if err := writeConfig(cfg.name, added.Text); err != nil {
		return fmt.Errorf("import: wrote and verified %s in %s, but %w; add the source by hand", strings.Join(names, ", "), where, err)
	}

	out := d.stdout
	fmt.Fprintf(out, "imported %d %s from %s into %s: %s\n", len(names), plural(len(names), "variable", "variables"), envFile, where, strings.Join(names, ", "))
	fmt.Fprintf(out, "verified: each value reads back as written\n")
	switch {
	case cfg.created:
		fmt.Fprintf(out, "%s: created, with the source in environment %s at line %d\n", cfg.name, cfg.env, added.Line)
	case added.Replaced != "":
		fmt.Fprintf(out, "%s: replaced the source at %s in environment %s\n", cfg.name, added.Replaced, cfg.env)
	default:
		fmt.Fprintf(out, "%s: added the source to environment %s at line %d\n", cfg.name, cfg.env, added.Line)
	}
	if o.remove {
		if err := os.Remove(envFile); err != nil {
			return fmt.Errorf("import: every value is stored and verified, but %s could not be removed: %w", envFile, err)
		}
		fmt.Fprintf(out, "removed %s\n", envFile)
	} else {
		fmt.Fprintf(out, "kept %s: delete it once your program runs with secretrun (or import with --remove)\n", envFile)
	}
	fmt.Fprintf(out, "next: secretrun -e %s -- YOUR_COMMAND; `secretrun -e %s env` lists each variable and its source\n", cfg.env, cfg.env)
	if warning := gitWarning(envFile, cfg.env, names); warning != "" {
		d.providerEnv().Warn("%s", warning)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// readDotenv parses a dotenv file as github.com/joho/godotenv does, its
// variables sorted by name.
func readDotenv(name string) ([]providers.NamedSecret, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	vars, err := dotenv.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("import: %s is not a dotenv file: %w; nothing written", name, err)
	}
	if len(vars) == 0 {
		return nil, fmt.Errorf("import: %s holds no variable; nothing written", name)
	}
	out := make([]providers.NamedSecret, 0, len(vars))
	for k, v := range vars {
		if !config.ValidName(k) {
			return nil, fmt.Errorf("import: %s: %q is not a valid variable name (letters, digits and _, not starting with a digit); nothing written", name, k)
		}
		out = append(out, providers.NamedSecret{Name: k, Value: providers.NewSecret(v)})
	}
	slices.SortFunc(out, func(a, b providers.NamedSecret) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// importConfig is the config an import edits: the file found, or the one
// it is about to create.
type importConfig struct {
	name, dir string
	text      []byte
	file      *config.File
	env       string
	created   bool
}

func loadOrStartConfig(o importOptions, d deps) (*importConfig, error) {
	wd, err := d.getwd()
	if err != nil {
		return nil, err
	}
	cfg := &importConfig{name: o.config}
	if cfg.name == "" {
		found, err := config.Find(wd)
		switch {
		case errors.Is(err, config.ErrNoConfig):
			cfg.name = config.FileName
		case err != nil:
			return nil, err
		default:
			cfg.name = relative(wd, found)
		}
	}
	cfg.text, err = os.ReadFile(cfg.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cfg.created = true
		cfg.env = o.env
		if cfg.env == "" {
			cfg.env = "dev"
		}
		cfg.text = config.NewFileText(cfg.env)
	case err != nil:
		return nil, fmt.Errorf("read config: %w", err)
	}
	if abs, err := filepath.Abs(cfg.name); err == nil {
		cfg.dir = filepath.Dir(abs)
	}
	if cfg.file, err = config.Parse(cfg.name, cfg.text); err != nil {
		return nil, err
	}
	if cfg.env == "" {
		cfg.env = o.env
	}
	if cfg.env == "" {
		cfg.env = cfg.file.DefaultEnvironment
	}
	if cfg.env == "" && len(cfg.file.Environments) == 1 {
		cfg.env = cfg.file.Environments[0]
	}
	if cfg.env == "" {
		return nil, fmt.Errorf("import: %s has several environments and no default_environment: choose one with --env NAME (defined: %s)", cfg.name, strings.Join(cfg.file.Environments, ", "))
	}
	return cfg, nil
}

// writeFailure says exactly which values reached the backend before a
// write failed.
func writeFailure(envFile, configName, where string, names, written []string, err error) error {
	hint := ""
	if errors.Is(err, providers.ErrExists) {
		hint = "; pass --force to replace"
	}
	if len(written) == 0 {
		return fmt.Errorf("import: nothing written to %s, %s left as it is and %s not changed: %w%s", where, envFile, configName, err, hint)
	}
	var missing []string
	for _, n := range names {
		if !slices.Contains(written, n) {
			missing = append(missing, n)
		}
	}
	return fmt.Errorf("import: wrote %s to %s, then failed; not written: %s; %s left as it is and %s not changed: %w%s",
		strings.Join(written, ", "), where, strings.Join(missing, ", "), envFile, configName, err, hint)
}

// verifyImport reads the source back through the provider's Fetch and
// compares each value, in constant time.
func verifyImport(ctx context.Context, p providers.Provider, src *providers.Source, values []providers.NamedSecret) error {
	results, err := p.Fetch(ctx, []*providers.Source{src})
	if err != nil {
		return fmt.Errorf("reading them back failed: %w", err)
	}
	if results[0].Err != nil {
		return fmt.Errorf("reading them back failed: %w", results[0].Err)
	}
	var differ []string
	for _, v := range values {
		got, ok := results[0].Fields[v.Name]
		if !ok || !got.Value.Equal(v.Value) {
			differ = append(differ, v.Name)
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("reading them back gave other values for %s", strings.Join(differ, ", "))
	}
	return nil
}

// writeConfig replaces the config file at once, keeping its mode, so that
// an interrupted import never leaves half a file.
func writeConfig(name string, text []byte) error {
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(name); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("%s could not be written: %w", name, err)
	}
	_, err = tmp.Write(text)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("%s could not be written: %w", name, err)
	}
	return nil
}

// gitExposure asks the real git whether the file is in the index and in
// which commits of any ref it is; nothing when there is no repository.
func gitExposure(file string) (tracked bool, commits []string) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return false, nil
	}
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	_, err = git(dir, "ls-files", "--error-unmatch", "--", base)
	tracked = err == nil
	if out, err := git(dir, "log", "--all", "--format=%h", "--", base); err == nil {
		commits = strings.Fields(string(out))
	}
	return tracked, commits
}

// gitWarning is what to do about a file that git has seen, or "".
func gitWarning(file, env string, names []string) string {
	tracked, commits := gitExposure(file)
	switch {
	case len(commits) > 0:
		still := ""
		if tracked {
			still = " and still tracked"
		}
		if len(commits) > 3 {
			commits = append(commits[:3], "...")
		}
		return fmt.Sprintf("%s is in git history (commits %s)%s: its values have leaked to everyone with a clone. "+
			"Untrack it (git rm --cached %s) and list it in .gitignore, find every copy with `secretrun -e %s scan --history`, and rotate %s at their issuers.",
			file, strings.Join(commits, ", "), still, file, env, strings.Join(names, ", "))
	case tracked:
		return fmt.Sprintf("%s is staged in git but not committed: unstage it (git rm --cached %s) and list it in .gitignore before the next commit.", file, file)
	}
	return ""
}

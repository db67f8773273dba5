package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/store"
)

// API keys from the command line. badger admits one process per data dir,
// so these run against a stopped server: to bootstrap the first admin key,
// or to recover when no admin key is left. While the server runs, admins
// use POST/GET /v1/admin/keys and DELETE /v1/admin/keys/{id}.

// devCredentialsFile is where serve puts one key per fixture principal when
// it loads the fixtures into a new store (development only: fixtures are
// sample data). It is the one place a token is written in clear.
const devCredentialsFile = "dev-credentials.json"

// newAccess wires the key use cases from the configuration.
func newAccess(cfg Config, db *store.DB, log zerolog.Logger, hooks []inspection.Hook) (*inspection.Access, error) {
	maxTTL := time.Duration(0)
	if cfg.KeyMaxTTL != "" {
		d, err := parseLifetime(cfg.KeyMaxTTL)
		if err != nil {
			return nil, fmt.Errorf("-key-max-ttl: %w", err)
		}
		maxTTL = d
	}
	defaultTTL := time.Duration(0)
	if maxTTL > 0 && maxTTL < access.DefaultKeyTTL {
		defaultTTL = maxTTL // a shorter maximum caps the default too
	}
	return inspection.NewAccess(inspection.AccessConfig{Store: db, Clock: calendar.SystemClock{}, Logger: log,
		DefaultKeyTTL: defaultTTL, MaxKeyTTL: maxTTL, Hooks: hooks})
}

// rateLimits reads -rate-limit and -rate-burst; zero means api's defaults.
func rateLimits(cfg Config) (perSecond float64, burst int, err error) {
	if cfg.RateLimit != "" {
		if perSecond, err = strconv.ParseFloat(cfg.RateLimit, 64); err != nil || perSecond <= 0 || perSecond > 1e9 {
			return 0, 0, fmt.Errorf("-rate-limit %q: want requests per second, a positive number", cfg.RateLimit)
		}
	}
	if burst, err = wholeSetting("rate-burst", cfg.RateBurst, 0, 1, 1<<30); err != nil {
		return 0, 0, err
	}
	return perSecond, burst, nil
}

// parseLifetime reads "90d" (days, which time.ParseDuration lacks) or any
// Go duration ("720h").
func parseLifetime(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*366 {
			return 0, fmt.Errorf("%q: want a whole number of days, e.g. 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a lifetime such as 90d or 720h", s)
	}
	return d, nil
}

// cliOperator is the principal recorded for key changes made from the
// command line: whoever runs it can read the data dir, so it acts as an
// admin, named after the OS user so the record says who.
func cliOperator(getenv func(string) string) access.Principal {
	user := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return -1
	}, getenv("USER"))
	name := "admin:cli"
	if user != "" {
		name += "." + user
	}
	if p, err := access.ParsePrincipal(name); err == nil {
		return p
	}
	return access.Principal{Name: "admin:cli", Role: access.RoleAdmin}
}

// createdKey is what `keys create` prints: the token appears here once.
type createdKey struct {
	ID        string    `json:"id"`
	Principal string    `json:"principal"`
	ExpiresAt time.Time `json:"expires_at"`
	Token     string    `json:"token"`
}

func runKeysCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var principal, expiresIn, note string
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&principal, "principal", "", "who the key authenticates: nsw, customs[:who], agency:<id>, admin, ...")
		fs.StringVar(&expiresIn, "expires-in", "", "lifetime, e.g. 30d or 720h (default 90d, at most -key-max-ttl)")
		fs.StringVar(&note, "note", "", "what the key is for")
	}
	return withAppFlags(ctx, "keys create", args, getenv, stderr, flags, func(a *app) error {
		if principal == "" {
			return errors.New("keys create: -principal is required")
		}
		req := inspection.KeyRequest{Principal: principal, Note: note}
		if expiresIn != "" {
			d, err := parseLifetime(expiresIn)
			if err != nil {
				return fmt.Errorf("-expires-in: %w", err)
			}
			req.ExpiresAt = time.Now().Add(d)
		}
		k, err := a.access.CreateKey(ctx, cliOperator(getenv), req)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(createdKey{ID: k.Key.ID, Principal: k.Key.Principal.Name, ExpiresAt: k.Key.ExpiresAt, Token: k.Token})
	})
}

func runKeysList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var asJSON bool
	flags := func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table") }
	return withAppFlags(ctx, "keys list", args, getenv, stderr, flags, func(a *app) error {
		keys, err := a.access.Keys(ctx, cliOperator(getenv))
		if err != nil {
			return err
		}
		// The same view as GET /v1/admin/keys: never the secret's hash.
		list := api.KeyList{Keys: make([]api.KeyInfo, 0, len(keys))}
		for _, k := range keys {
			list.Keys = append(list.Keys, api.KeyInfo{ID: k.ID, Principal: k.Principal, Status: a.access.KeyStatus(k), Note: k.Note,
				CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, RevokedBy: k.RevokedBy})
		}
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPRINCIPAL\tSTATUS\tEXPIRES\tCREATED BY\tNOTE")
		for _, k := range list.Keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Principal.Name, k.Status, k.ExpiresAt.Format(time.DateOnly), k.CreatedBy, k.Note)
		}
		return tw.Flush()
	})
}

func runKeysRevoke(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:] // ktcn keys revoke <id> [flags]
	}
	flags := func(fs *flag.FlagSet) { fs.StringVar(&id, "id", id, "key ID to revoke") }
	return withAppFlags(ctx, "keys revoke", args, getenv, stderr, flags, func(a *app) error {
		if id == "" {
			return errors.New("keys revoke: name the key ID: ktcn keys revoke <id>")
		}
		k, err := a.access.RevokeKey(ctx, cliOperator(getenv), id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s (%s) at %s\n", k.ID, k.Principal.Name, k.RevokedAt.Format(time.RFC3339))
		return nil
	})
}

// devPrincipals is one principal of every role but agency, and every
// fixture agency.
func devPrincipals() []string {
	names := []string{"nsw", "customs", "policy-author", "policy-approver", "auditor", "admin", "metrics"}
	for _, a := range fixtures.Agencies() {
		names = append(names, "agency:"+a.ID)
	}
	return names
}

// writeDevCredentials issues one key per fixture principal and writes them
// to <data dir>/dev-credentials.json (0600), for a store the fixtures were
// just loaded into. A store that already holds keys is left alone. The log
// names the file, never a key.
func (a *app) writeDevCredentials(ctx context.Context) error {
	existing, err := a.access.Keys(ctx, access.SystemPrincipal())
	if err != nil {
		return fmt.Errorf("dev credentials: %w", err)
	}
	if len(existing) > 0 {
		return nil
	}
	var reqs []inspection.KeyRequest
	for _, name := range devPrincipals() {
		reqs = append(reqs, inspection.KeyRequest{Principal: name, Note: "development credentials (fixtures)"})
	}
	keys, err := a.access.CreateKeys(ctx, access.Principal{Name: "admin:fixtures", Role: access.RoleAdmin}, reqs)
	if err != nil {
		return fmt.Errorf("dev credentials: %w", err)
	}
	creds := make(map[string]string, len(keys))
	for _, k := range keys {
		creds[k.Key.Principal.Name] = k.Token
	}
	doc, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return fmt.Errorf("dev credentials: %w", err)
	}
	path := filepath.Join(a.cfg.DataDir, devCredentialsFile)
	if err := writeSecretFile(path, append(doc, '\n')); err != nil {
		return fmt.Errorf("dev credentials: %w", err)
	}
	a.log.Warn().Str("path", path).Int("keys", len(keys)).
		Msg("development credentials written: one API key per fixture principal (use KTCN_FIXTURES=off in production)")
	return nil
}

// writeSecretFile writes data to path readable by the owner only, through a
// temporary file and a rename, so a reader never sees half a file and the
// file is never briefly world-readable.
func writeSecretFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // CreateTemp makes it 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

const generateUsage = `Usage: ktcn fixtures generate -seed S -lots N -years Y (-out FILE | -data-dir DIR) [flags]

Generates a seeded synthetic history of declarations, decisions, results and
alerts. With -out it streams JSON lines (one record per line, "type" says
which) in bounded memory; random checks of reduced lots follow the policy's
quota, drawn under a key derived from the seed. With -data-dir it replays the
history through the service into the store (a new store, or one whose quota
secret exists), and the service's own quota draws the random checks. The same
flags always give the same file.

`

// newService wires an inspection.Service the way withAppFlags does, on a
// clock of the caller's choosing; replays step their own clock. If
// inspection.Config gains a field, withAppFlags and this are the two places
// to set it.
func newService(st inspection.Store, p *policy.Policy, clk calendar.Clock, keys quota.Keys, log zerolog.Logger) (*inspection.Service, error) {
	return inspection.NewService(inspection.Config{Store: st, Policy: p, Clock: clk, QuotaKeys: keys, Logger: log})
}

func runFixturesGenerate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("fixtures generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, generateUsage)
		fs.PrintDefaults()
	}
	var (
		seed      = fs.Uint64("seed", 1, "random seed")
		lots      = fs.Int("lots", 100_000, "lots (declaration lines) in the whole history")
		years     = fs.Int("years", 1, "years of history")
		endFlag   = fs.String("end", "", `end of the history, YYYY-MM-DD (exclusive); default 2027-01-01 with -out, today with -data-dir`)
		out       = fs.String("out", "", `write JSON lines to FILE ("-" for standard output)`)
		dataDir   = fs.String("data-dir", "", "replay the history through the service into this badger directory")
		goods     = fs.Int("goods", 0, "goods in the universe (default: from the volume)")
		importers = fs.Int("importers", 0, "importers in the universe (default: from the volume)")
		policy    = fs.String("policy", env("KTCN_POLICY", ""), "policy document (JSON); default: the embedded legal default")
		sampling  = fs.Bool("sampling", true, "with -out: draw the policy's random checks of reduced lots (false: reduced lots are never inspected)")
		secret    = fs.String("quota-secret", env("KTCN_QUOTA_SECRET", ""), "with -data-dir: quota master secret file (default: as serve's, in $KTCN_SECRETS_DIR or <data dir's parent>/var; created for a new store)")
		logLevel  = fs.String("log-level", env("KTCN_LOG_LEVEL", "warn"), "log level of the store and the service during a replay")
		bulk      = fs.Bool("bulk", false, "with -data-dir: do not wait for each commit to reach the disk (synced once at the end); if interrupted, the store may lack its last commits: generate again into an empty directory")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (*out == "") == (*dataDir == "") {
		return errors.New("fixtures generate: give exactly one of -out FILE or -data-dir DIR")
	}
	p, err := loadPolicy(*policy)
	if err != nil {
		return err
	}
	end := fixtures.DefaultEnd()
	if *dataDir != "" {
		// A store's history must not lie in the future of the service
		// that will read it.
		end = time.Now()
	}
	if *endFlag != "" {
		if end, err = calendar.ParseTime("end", *endFlag); err != nil {
			return err
		}
	}
	started := time.Now()
	cfg := fixtures.Config{Seed: *seed, Lots: *lots, Years: *years, End: end, Policy: p, Goods: *goods, Importers: *importers}
	// 10 M lots take minutes: show them move on a terminal.
	bar := newProgress(stderr, "fixtures generate", "lots", int64(*lots))
	cfg.Progress = func(n int) { bar.Set(int64(n)) }
	report := stdout
	var (
		sum   fixtures.Summary
		stats *fixtures.ReplayStats
	)
	if *out != "" {
		if *sampling && p.Reduced.Sampling.Enabled {
			cfg.NewSampler = func() fixtures.Sampler { return fixtures.QuotaSampler(p, fixtures.SeedSecret(*seed)) }
		}
		gen, err := fixtures.NewContext(ctx, cfg)
		if err != nil {
			return err
		}
		if *out == "-" {
			report = stderr
			sum, err = fixtures.WriteJSONLines(ctx, stdout, gen)
		} else {
			sum, err = writeHistoryFile(ctx, *out, gen)
		}
		if err != nil {
			return fmt.Errorf("fixtures generate: %w", err)
		}
	} else {
		log, err := newLogger(*logLevel, stderr)
		if err != nil {
			return err
		}
		secretPath := *secret
		if secretPath == "" {
			secretPath = defaultSecretPath(getenv("KTCN_SECRETS_DIR"), *dataDir, ".quota-secret")
		}
		// Like serve's first start, a new store may get a new secret; an
		// existing store keeps the one it has (or fails to draw).
		entries, _ := os.ReadDir(*dataDir)
		keys, err := loadQuotaSecret(secretPath, *dataDir, len(entries) == 0, log)
		if err != nil {
			return err
		}
		db, err := store.Open(store.Options{Dir: *dataDir, Logger: log, BulkLoad: *bulk})
		if err != nil {
			return fmt.Errorf("open store %s: %w", *dataDir, err)
		}
		defer func() {
			if cerr := db.Close(); cerr != nil {
				log.Error().Err(cerr).Msg("close store")
			}
		}()
		// The store's own secret calibrates as the service will draw.
		cfg.NewSampler = func() fixtures.Sampler { return fixtures.QuotaSampler(p, keys) }
		// Each alert the service records is a warning line; keep them for
		// -log-level info or debug.
		svcLog := log
		if svcLog.GetLevel() > zerolog.InfoLevel {
			svcLog = log.Level(zerolog.ErrorLevel)
		}
		rep, err := fixtures.LoadHistory(ctx, db, func(c calendar.Clock) (*inspection.Service, error) {
			return newService(db, p, c, keys, svcLog)
		}, cfg)
		if err != nil {
			return fmt.Errorf("fixtures generate: %w", err)
		}
		sum, stats = rep.Summary, &rep.Replay
	}
	bar.Done()
	took := time.Since(started)
	fmt.Fprintln(report, sum)
	if stats != nil {
		fmt.Fprintln(report, " ", stats)
	}
	fmt.Fprintf(report, "  generated in   %s (%.0f lots/s)\n", took.Round(time.Millisecond), float64(sum.Lots)/took.Seconds())
	return nil
}

func writeHistoryFile(ctx context.Context, path string, g *fixtures.Generator) (sum fixtures.Summary, err error) {
	f, err := os.Create(path)
	if err != nil {
		return sum, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path) // a cut-off history is worse than none
		}
	}()
	return fixtures.WriteJSONLines(ctx, f, g)
}

// First start: a year of history ending now, small enough to replay
// through the service in a second or two (each declaration and result is
// one synced transaction), big enough that goods sit in every mode.
const (
	firstStartSeed  = 1
	firstStartLots  = 800
	firstStartYears = 1
)

// loadFixturesWithHistory is serve's loadFixtures: on a new store it also
// starts loading a year of generated history in the background, so the
// server listens at once and the history lands a second or two later (a
// test that starts serve and stops it does not wait for it). The returned
// stop cancels a load still running and waits for it; serve defers it so
// the store outlives the load. An interrupted load leaves part of the
// history, and a later start does not load it again (delete the data dir
// to start over). KTCN_FIXTURES=reference loads the reference data only.
func (a *app) loadFixturesWithHistory(ctx context.Context) (stop func(), err error) {
	noop := func() {}
	loaded, err := fixtures.IsLoaded(ctx, a.store)
	if err != nil {
		return noop, fmt.Errorf("check fixtures: %w", err)
	}
	if err := a.loadFixtures(ctx, false); err != nil {
		return noop, err
	}
	if loaded || strings.EqualFold(a.cfg.Fixtures, "off") || strings.EqualFold(a.cfg.Fixtures, "reference") {
		return noop, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.loadHistory(ctx); err != nil {
			if ctx.Err() != nil {
				a.log.Info().Msg("sample history interrupted: part of it is loaded (delete the data dir to load it again)")
				return
			}
			a.log.Error().Err(err).Msg("load sample history")
		}
	}()
	a.log.Info().Int("lots", firstStartLots).Msg("loading a year of sample history in the background")
	return func() { cancel(); <-done }, nil
}

// loadHistory fills a new data dir with a generated year of history,
// replayed through the service with the store's own quota secret. The
// replay's service has no audit observer (withAppFlags keeps serve's to
// itself): the service writes every audit entry into the chain as usual,
// but no checkpoint is signed while the history loads.
func (a *app) loadHistory(ctx context.Context) error {
	started := time.Now()
	p := a.svc.Configured()
	keys, err := loadQuotaSecret(a.cfg.QuotaSecret, a.cfg.DataDir, false, a.log)
	if err != nil {
		return err
	}
	if _, err := keys.PeriodKey(quota.PeriodOf(started)); err != nil && p.Reduced.Sampling.Enabled {
		// Only serve creates the secret; without it reduced lots cannot be
		// decided, so leave the history to the first serve.
		a.log.Warn().Err(err).Msg("no sample history: the quota secret does not exist yet (ktcn serve creates it)")
		return nil
	}
	// The replay's service would log every decision; keep the console for
	// what the newcomer needs.
	quiet := a.log.Level(zerolog.ErrorLevel)
	rep, err := fixtures.LoadHistory(ctx, a.store, func(c calendar.Clock) (*inspection.Service, error) {
		return newService(a.store, p, c, keys, quiet)
	}, fixtures.Config{Seed: firstStartSeed, Lots: firstStartLots, Years: firstStartYears, End: started, Policy: p,
		NewSampler: func() fixtures.Sampler { return fixtures.QuotaSampler(p, keys) }})
	if err != nil {
		return fmt.Errorf("load sample history: %w", err)
	}
	s := rep.Summary
	ev := a.log.Info().Int("lots", s.Lots).Int("goods", s.Goods).Int("importers", s.Importers).
		Int("strict", s.Strict).Int("normal", s.Normal).Int("reduced", s.Reduced).Int("exempt", s.Exempt).
		Int("results", s.Results).Float64("failure_rate", s.FailureRate).Int("alerts", s.Alerts).
		Int64("took_ms", time.Since(started).Milliseconds())
	modes := make([]string, 0, len(rep.Examples))
	for m := range rep.Examples {
		modes = append(modes, string(m))
	}
	sort.Strings(modes)
	for _, m := range modes {
		var goods []string
		for _, g := range rep.Examples[inspection.Mode(m)] {
			goods = append(goods, g.Key.String())
		}
		ev = ev.Strs("goods_"+m, goods)
	}
	ev.Msg("sample history loaded: a year of declarations, results and alerts; look goods up with GET /v1/goods/{key}")
	if rep.Replay.ModeMismatches > 0 {
		a.log.Warn().Int("lines", rep.Replay.ModeMismatches).Msg("the service decided some sample lots differently from the generator")
	}
	return nil
}

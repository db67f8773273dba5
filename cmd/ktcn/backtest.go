package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
)

// runBacktest replays history under a stored policy version and the one
// in force, side by side (inspection/backtest, docs/backtest.md): the
// store's own history (a stopped store or a copy: it reads one snapshot),
// or a generated one.
func runBacktest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var version, from, to, generated, changes string
	var asJSON bool
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&version, "version", "", "the candidate policy version (stored: draft, submitted, approved or active)")
		fs.StringVar(&from, "from", "", "first day reported, YYYY-MM-DD (history before it is replayed, not reported)")
		fs.StringVar(&to, "to", "", "day the replay stops, YYYY-MM-DD (exclusive)")
		fs.StringVar(&generated, "generated", "", "backtest a generated history instead: SEED,LOTS,YEARS")
		fs.StringVar(&changes, "changes", "", "write every changed lot to this CSV file")
		fs.BoolVar(&asJSON, "json", false, "print the whole report as JSON")
	}
	return withAppFlags(ctx, "backtest", args, getenv, stderr, flags, func(a *app) error {
		if version == "" {
			return errors.New("backtest: -version is required")
		}
		sys := access.SystemPrincipal()
		v, err := a.svc.PolicyVersionOf(ctx, sys, version)
		if err != nil {
			return fmt.Errorf("backtest: version %s: %w", version, err)
		}
		candidate, err := policy.ParsePolicy(v.Document)
		if err != nil {
			return fmt.Errorf("backtest: version %s does not validate: %w", version, err)
		}
		active, err := a.svc.Policy(ctx, sys)
		if err != nil {
			return err
		}
		cfg := backtest.Config{Active: active, Candidate: candidate}
		if cfg.From, err = backtestDay(from); err != nil {
			return err
		}
		if cfg.To, err = backtestDay(to); err != nil {
			return err
		}
		var (
			src   iter.Seq2[backtest.Item, error]
			total int64
		)
		if generated != "" {
			seed, lots, years, err := parseGenerated(generated)
			if err != nil {
				return err
			}
			if src, cfg.Keys, cfg.MaxLag, err = generatedHistory(ctx, active, backtest.Generated{Seed: seed, Lots: lots, Years: years}); err != nil {
				return err
			}
			total = int64(lots)
		} else {
			cfg.Keys, src = a.quotaKeys, backtest.Stored(ctx, a.store)
		}
		flush := func() error { return nil }
		if changes != "" {
			f, err := os.Create(changes)
			if err != nil {
				return fmt.Errorf("backtest: changes file: %w", err)
			}
			defer f.Close()
			bw := bufio.NewWriter(f)
			out, err := backtest.NewChangesCSV(bw)
			if err != nil {
				return err
			}
			cfg.OnChange = out.Write
			flush = func() error {
				if err := out.Flush(); err != nil {
					return fmt.Errorf("backtest: changes file: %w", err)
				}
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("backtest: changes file: %w", err)
				}
				return f.Close()
			}
		}
		start := time.Now()
		cfg.Progress = func(lots int64) {
			rate := float64(lots) / max(time.Since(start).Seconds(), 1e-3)
			if total > 0 {
				fmt.Fprintf(stderr, "\rbacktest: %d of %d lots (%.0f%%), %.0f lots/s ", lots, total, 100*float64(lots)/float64(total), rate)
			} else {
				fmt.Fprintf(stderr, "\rbacktest: %d lots, %.0f lots/s ", lots, rate)
			}
		}
		rep, err := backtest.Run(ctx, cfg, src)
		fmt.Fprintln(stderr)
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		return rep.WriteText(stdout)
	})
}

// generatedHistory is a generated history under the policy in force,
// its random checks drawn under a key derived from the seed, for the
// command and the API's jobs (backtest.Source).
func generatedHistory(ctx context.Context, active *policy.Policy, gen backtest.Generated) (iter.Seq2[backtest.Item, error], quota.Keys, time.Duration, error) {
	keys := fixtures.SeedSecret(gen.Seed)
	g, err := fixtures.NewContext(ctx, fixtures.Config{Seed: gen.Seed, Lots: gen.Lots, Years: gen.Years, Policy: active,
		NewSampler: func() fixtures.Sampler { return fixtures.QuotaSampler(active, keys) }})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("backtest: generate history: %w", err)
	}
	return g.BacktestItems(ctx), keys, fixtures.BacktestMaxLag, nil
}

func backtestDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, calendar.Vietnam())
	if err != nil {
		return time.Time{}, fmt.Errorf("backtest: day %q: want YYYY-MM-DD", s)
	}
	return t, nil
}

func parseGenerated(s string) (seed uint64, lots, years int, err error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("backtest: -generated %q: want SEED,LOTS,YEARS", s)
	}
	if seed, err = strconv.ParseUint(parts[0], 10, 64); err == nil {
		if lots, err = strconv.Atoi(parts[1]); err == nil {
			years, err = strconv.Atoi(parts[2])
		}
	}
	if err != nil || lots < 1 || years < 1 {
		return 0, 0, 0, fmt.Errorf("backtest: -generated %q: want SEED,LOTS,YEARS, positive", s)
	}
	return seed, lots, years, nil
}

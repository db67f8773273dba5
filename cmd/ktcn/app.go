package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

// Run is the whole program behind main, driven by tests end to end. It
// exits 0 on success, 1 when a command fails, and 2 when the command line
// or a setting is wrong (nothing was started).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	var err error
	switch cmd := args[0]; {
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage())
		return 0
	default:
		c, ok := findCommand(args)
		if !ok {
			fmt.Fprintf(stderr, "ktcn: unknown command %q\n\n%s", strings.Join(args, " "), usage())
			return 2
		}
		err = c.run(ctx, args[len(c.words):], getenv, stdout, stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ktcn: %v\n", err)
		if errors.As(err, new(configError)) {
			return 2
		}
		return 1
	}
	return 0
}

// command is one subcommand: the words that name it, its arguments and
// what it does in one line (for ktcn -h), and what it runs.
type command struct {
	words   []string
	args    string
	summary string
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

func (c command) name() string { return strings.Join(c.words, " ") }

func (c command) synopsis() string {
	if c.args == "" {
		return c.name()
	}
	return c.name() + " " + c.args
}

// commands lists every subcommand; each lives in its own file. ktcn -h is
// built from this table, so a command cannot be dispatched and left out of
// the usage. A function, not a variable: the commands' help reads the
// table, and the table names the commands.
func commands() []command {
	return []command{
		{[]string{"serve"}, "[flags]", "serve the HTTP API (loads sample data into an empty data dir)", runServe},
		{[]string{"fixtures", "load"}, "[flags]", "load the sample agencies, importers and manufacturers into the data dir", runFixturesLoad},
		{[]string{"fixtures", "generate"}, "-seed S -lots N -years Y (-out FILE | -data-dir DIR)", "generate a seeded synthetic history, as JSON lines or replayed into a store", runFixturesGenerate},
		{[]string{"quota", "reveal"}, "-period P", "print a closed period's sampling key (and record the reveal)", runQuotaReveal},
		{[]string{"verify", "quota"}, "-period P [-key-file K | -open]", "recompute every draw of a period and check the cap", runVerifyQuota},
		{[]string{"verify", "audit"}, "[-checkpoints F -pubkey K]", "walk the audit chain and check every record it covers", runVerifyAudit},
		{[]string{"audit", "pubkey"}, "[flags]", "print the public key that signs audit checkpoints", runAuditPubkey},
		{[]string{"keys", "create"}, "-principal P [-expires-in 90d] [-note N]", "issue an API key (the token is printed once)", runKeysCreate},
		{[]string{"keys", "list"}, "[-json]", "list every API key, active or not (never a secret)", runKeysList},
		{[]string{"keys", "revoke"}, "<id>", "revoke an API key at once", runKeysRevoke},
		{[]string{"loadgen"}, "[-rate R] [-clients N] [-duration D] [-count N]", "load a running server over loopback and report latency", runLoadgen},
		{[]string{"nsw-receiver"}, "-secret S [-secret-file F] [-record R.jsonl] [-addr A]", "reference receiver of ktcn's webhooks: verifies, dedupes, checks order", runReceiver},
		{[]string{"backup"}, "-out FILE [-addr URL] [-key K]", "take an online backup from the running server", runBackup},
		{[]string{"backtest"}, "-version V [-from D -to D | -generated SEED,LOTS,YEARS] [-changes F.csv] [-json]",
			"replay history under version V and the one in force, side by side (a stopped store or a copy; docs/backtest.md)", runBacktest},
		{[]string{"restore"}, "FILE DIR", "check a backup's SHA-256, then restore it into an empty DIR", runRestore},
		{[]string{"compact"}, "[flags]", "wait for the store's compaction to catch up (after a bulk load or a restore; a stopped store)", runCompact},
	}
}

// usage is ktcn -h: every command of the table, one line each.
func usage() string {
	var b strings.Builder
	b.WriteString("ktcn schedules specialized inspection of imported goods by risk.\n\n")
	b.WriteString("Usage: ktcn <command> [flags]      ktcn <command> -h lists a command's flags\n\nCommands:\n")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name()))
	}
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name(), c.summary)
	}
	b.WriteString(`
Commands that open the data dir (serve, fixtures load, quota, verify, audit,
keys) read the settings of ` + "`ktcn serve -h`" + `: each a flag, an environment
variable (KTCN_…) and a key of the TOML file given by -config or KTCN_CONFIG,
in that order of precedence (README, "Configuration"). Badger admits one
process per data dir: run keys commands with the server stopped, or use the
admin endpoints /v1/admin/keys while it runs.
`)
	return b.String()
}

// findCommand picks the command whose words start args, longest first.
func findCommand(args []string) (command, bool) {
	best, found := command{}, false
	for _, c := range commands() {
		if len(c.words) <= len(args) && strings.Join(args[:len(c.words)], " ") == c.name() &&
			(!found || len(c.words) > len(best.words)) {
			best, found = c, true
		}
	}
	return best, found
}

func runServe(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	return withApp(ctx, "serve", args, getenv, stderr, func(a *app) error {
		serveGC(getenv, a.log)
		return a.serve(ctx, nil)
	})
}

// serveGCPercent is the garbage collector's target for ktcn serve unless
// GOGC is set: a collection when the heap has grown by 200% of what the
// last one kept, not Go's 100%. badger allocates in large pieces (a
// memtable's 88 MiB arena when one fills, a table builder's buffers when
// it is flushed) and Go makes the allocating goroutine pay for them with
// marking work while a collection runs: with 100% that was badger's one
// writer, holding the lock every read takes, so every request waited
// 297-371 ms once a memtable filled (open loop at 200/s on an empty
// store, five runs). With 200% it was 59-85 ms (four runs); with 400%
// 53-58 ms (three), at more peak memory (683 against 479 MiB over
// the same 40 s run; 5,584 against 4,461 MiB in the scale benchmark's
// empty-store phases), so 200% (docs/performance.md).
// GOMEMLIMIT, which Go reads itself, bounds the heap.
const serveGCPercent = 200

func serveGC(getenv func(string) string, log zerolog.Logger) {
	if getenv("GOGC") != "" {
		log.Info().Str("gogc", getenv("GOGC")).Msg("garbage collector target from GOGC")
		return
	}
	debug.SetGCPercent(serveGCPercent)
	log.Info().Int("gc_percent", serveGCPercent).Msg("garbage collector target (GOGC overrides it)")
}

func runFixturesLoad(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	return withApp(ctx, "fixtures load", args, getenv, stderr, func(a *app) error { return a.loadFixtures(ctx, true) })
}

// app holds the wired dependencies of one command.
type app struct {
	cfg   Config
	log   zerolog.Logger
	store *store.DB
	svc   *inspection.Service
	// access authenticates API requests and manages keys (keys.go).
	access *inspection.Access
	// feed serves the NSW feed and webhooks, outbox wakes its readers and
	// delivery (feed.go).
	feed   *inspection.Feed
	outbox *inspection.Outbox
	// backups takes backups into cfg.BackupDir (backup.go).
	backups *inspection.Backups
	// quotaKeys derive the quota's period keys (a backtest draws with them).
	quotaKeys quota.Keys
	// timeouts of serve's connections; zero means defaultTimeouts (tests
	// shorten them).
	timeouts serverTimeouts
}

func withApp(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer, fn func(*app) error) error {
	return withAppFlags(ctx, name, args, getenv, stderr, nil, fn)
}

// withAppFlags is withApp for commands with flags of their own, registered
// by extra.
func withAppFlags(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer,
	extra func(*flag.FlagSet), fn func(*app) error) error {
	cfg, err := parseConfig(name, args, getenv, stderr, extra)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	cfg.warnLegacy(log)
	policy, err := loadPolicy(cfg.Policy)
	if err != nil {
		return err
	}
	db, err := store.Open(store.Options{Dir: cfg.DataDir, Logger: log})
	if err != nil {
		return fmt.Errorf("open store %s: %w", cfg.DataDir, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil {
			log.Error().Err(cerr).Msg("close store")
		}
	}()
	// Only serve may create the master secret: a command that finds none
	// for an existing store must not invent one.
	secret, err := loadQuotaSecret(cfg.QuotaSecret, cfg.DataDir, name == "serve", log)
	if err != nil {
		return err
	}
	// Signed audit checkpoints (audit.go); closed before the store is.
	audit, closeAudit, err := openAudit(ctx, cfg, name, db, log)
	if err != nil {
		return err
	}
	defer closeAudit()
	// One outbox hook for every writer over the store: the events of a
	// change are written in its transaction (feed.go).
	outbox := inspection.NewOutbox()
	hooks := []inspection.Hook{outbox}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: policy, Clock: calendar.SystemClock{},
		QuotaKeys: secret, Logger: log, AuditObserver: audit, Hooks: hooks})
	if err != nil {
		return err
	}
	access, err := newAccess(cfg, db, log, hooks)
	if err != nil {
		return err
	}
	fd, err := newFeed(cfg, db, outbox, log, audit)
	if err != nil {
		return err
	}
	backups, err := newBackups(cfg, db, log)
	if err != nil {
		return err
	}
	return fn(&app{cfg: cfg, log: log, store: db, svc: svc, access: access, feed: fd, outbox: outbox, backups: backups, quotaKeys: secret})
}

func newLogger(level string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	// The server, the committer, cron jobs and the history loader log from
	// their own goroutines; a writer that is not safe for concurrent use
	// (a buffer in tests, a pipe wrapper) must not interleave or race.
	return zerolog.New(zerolog.SyncWriter(w)).Level(lvl).With().Timestamp().Logger(), nil
}

func loadPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.DefaultPolicy()
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := policy.ParsePolicy(doc)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// loadFixtures loads the sample data when forced or when the store is
// empty and fixtures are not off.
func (a *app) loadFixtures(ctx context.Context, force bool) error {
	if !force && strings.EqualFold(a.cfg.Fixtures, "off") {
		return nil
	}
	loaded, err := fixtures.IsLoaded(ctx, a.store)
	if err != nil {
		return fmt.Errorf("check fixtures: %w", err)
	}
	if loaded && !force {
		return nil
	}
	if err := fixtures.Load(ctx, a.svc); err != nil {
		return fmt.Errorf("load fixtures: %w", err)
	}
	a.log.Info().Str("data_dir", a.cfg.DataDir).Msg("fixtures loaded")
	if !force {
		// serve just loaded sample data into a new store: development.
		return a.writeDevCredentials(ctx)
	}
	return nil
}

// serve runs the HTTP API until ctx ends, then drains in-flight requests.
// ready, when not nil, receives the bound address (tests listen on :0).
func (a *app) serve(ctx context.Context, ready chan<- string) error {
	perSecond, burst, err := rateLimits(a.cfg)
	if err != nil {
		return err
	}
	limits, err := parseClientLimits(a.cfg)
	if err != nil {
		return err
	}
	stopHistory, err := a.loadFixturesWithHistory(ctx) // generate.go: a new store also gets a year of history
	if err != nil {
		return err
	}
	defer stopHistory()
	missing, err := a.svc.Start(ctx)
	if err != nil {
		return fmt.Errorf("start service: %w", err)
	}
	if len(missing) > 0 {
		a.log.Warn().Strs("agencies", missing).Msg("policy routes to agencies the store does not know; load fixtures or register them")
	}
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Addr, err)
	}
	// At most maxConns connections at once, the longest idle given up
	// when a new one needs its slot; every state has a timeout, so none
	// holds a slot for ever (connlimit.go).
	conns := newConnLimiter(ln, limits.maxConns)
	timeouts := a.timeouts
	if timeouts == (serverTimeouts{}) {
		timeouts = defaultTimeouts()
	}
	jobs := a.newJobs(ctx)
	// One registry for GET /metrics, made here and handed to whatever
	// reports (no package-level default registry): the API registers its
	// own series (the jobs' among them, read from the job registry at
	// each scrape), the store its own.
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.store.Collector())
	// Jobs a previous run left unfinished are marked failed here
	// (interrupted by a restart); Close stops the running ones before
	// the store closes, leaving them to the same fate at the next start.
	backtests, err := backtest.NewJobs(ctx, backtest.JobsConfig{Service: a.svc, Store: a.store, Jobs: a.store, Keys: a.quotaKeys, Generate: generatedHistory})
	if err != nil {
		return fmt.Errorf("backtest jobs: %w", err)
	}
	defer backtests.Close()
	srv := &http.Server{
		Handler: api.New(api.Config{Service: a.svc, Access: a.access, Feed: a.feed, Backups: a.backups, Logger: a.log, Jobs: jobs, Ready: a.ready(jobs),
			Backtests: backtests,
			RateLimit: perSecond, RateBurst: burst, AuthFailures: limits.authFailures, AuthFailWindow: limits.authFailWindow,
			Registry: reg}),
		ReadHeaderTimeout: timeouts.readHeader,
		ReadTimeout:       timeouts.read,
		WriteTimeout:      timeouts.write,
		IdleTimeout:       timeouts.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         conns.connState,
		// OPTIONS * goes to the API like any request (and gets its
		// problem+json), not to net/http's own empty 200.
		DisableGeneralOptionsHandler: true,
	}
	a.log.Info().Str("addr", ln.Addr().String()).Str("data_dir", a.cfg.DataDir).
		Str("policy_version", a.svc.Configured().Version).Msg("ktcn listening")
	if ready != nil {
		ready <- ln.Addr().String()
	}
	stopDelivery, err := a.startDelivery(ctx)
	if err != nil {
		return err
	}
	defer stopDelivery()
	stopJobs, err := a.startJobs(jobs)
	if err != nil {
		return err
	}
	defer stopJobs()
	stopDebug, err := startDebug(a.cfg.DebugAddr, a.log)
	if err != nil {
		return err
	}
	defer stopDebug()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conns) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info().Msg("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// What group commit did since Open: batches is the number of synced
	// commits, so updates/batches is decisions per fsync, and strace's
	// sync count over the same run can be held against batches
	// (docs/performance.md). Log, not Info: benchmarks run at -log-level
	// warn, and this line is a summary, not a warning.
	st := a.store.CommitStats()
	a.log.Log().Int64("batches", st.Batches).Int64("updates", st.Updates).Int64("reruns", st.Reruns).
		Int64("max_batch", st.MaxBatch).Float64("updates_per_batch", float64(st.Updates)/float64(max(st.Batches, 1))).
		Msg("group commit stats")
	return nil
}

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
	"strings"
	"time"

	"github.com/mattn/go-isatty"
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

const usage = `ktcn schedules specialized inspection of imported goods by risk.

Usage:
  ktcn serve     [flags]   serve the HTTP API (loads fixtures into an empty data dir)
  ktcn fixtures load [flags]   load the sample agencies, importers and manufacturers
  ktcn quota reveal --period P   print a closed period's sampling key (and record the reveal)
  ktcn verify quota --period P [--key-file K]   recompute every draw of a period and check the cap
  ktcn verify audit [--checkpoints F --pubkey K]   walk the audit chain, check every record it covers
  ktcn audit pubkey        print the public key that signs audit checkpoints
  ktcn keys create -principal P [-expires-in 90d] [-note N]   issue an API key (the token is printed once)
  ktcn keys list [-json]   every API key, active or not (never a secret)
  ktcn keys revoke <id>    revoke a key at once
  ktcn loadgen [-rate R] [-clients N] [-duration D] [-count N]   load a running server over loopback
  ktcn backup -out FILE [-addr URL] [-key K]   take an online backup from the running server
  ktcn restore FILE DIR    check a backup's SHA-256, then restore it into an empty DIR
  ktcn backtest -version V [-from D -to D | -generated SEED,LOTS,YEARS] [-changes F.csv] [-json]
                           replay history under version V and the one in force, side by side
                           (a stopped store or a copy; docs/backtest.md)
  ktcn nsw-receiver -secret S [-secret S2] [-secret-file F] [-record R.jsonl] [-addr A] [-fail-rate P]
                           reference receiver of ktcn's webhooks: verifies, dedupes, checks order
  (keys commands open the data dir, so run them with the server stopped;
   while it runs, use the admin endpoints /v1/admin/keys)

Flags (each also an environment variable):
  -data-dir  KTCN_DATA_DIR   badger directory (default ./data)
  -addr      KTCN_ADDR       listen address (default 127.0.0.1:8080)
  -log-level KTCN_LOG_LEVEL  debug, info, warn, error (default info)
  -fixtures  KTCN_FIXTURES   "off" to start without sample data (default on)
  -policy    KTCN_POLICY     policy document (JSON); default: the embedded legal default
  -quota-secret KTCN_QUOTA_SECRET  quota master secret file (default: <data dir>.quota-secret)
  -audit-key KTCN_AUDIT_KEY        audit checkpoint signing key (default: <data dir>.audit-key)
  -audit-checkpoints KTCN_AUDIT_CHECKPOINTS  signed checkpoint file (default: <data dir>.audit-checkpoints)
  -audit-checkpoint-every KTCN_AUDIT_CHECKPOINT_EVERY  audit entries between checkpoints (default 1000)
  -key-max-ttl KTCN_KEY_MAX_TTL    longest API key lifetime, e.g. 366d (default 366d)
  -rate-limit  KTCN_RATE_LIMIT     requests per second per principal (default 5000)
  -rate-burst  KTCN_RATE_BURST     requests a principal may send at once (default 10000)
  -auth-fail-limit  KTCN_AUTH_FAIL_LIMIT   failed authentications from one address before 429 (default 20)
  -auth-fail-window KTCN_AUTH_FAIL_WINDOW  the window they are counted in (default 1m)
  -max-conns   KTCN_MAX_CONNS      connections held open at once (default 1024)
  -backup-dir  KTCN_BACKUP_DIR     backups of POST /v1/admin/backups (default: <data dir>.backups)
  -backup-keep KTCN_BACKUP_KEEP    backups kept there, newest first (default 7; 0 keeps all)
`

// Config is the service configuration, from flags over environment.
type Config struct {
	DataDir  string
	Addr     string
	LogLevel string
	Fixtures string
	Policy   string
	// QuotaSecret is the file holding the quota master secret, kept
	// outside the data dir so a copy of the database cannot predict draws.
	QuotaSecret string
	// AuditKey signs audit checkpoints, appended to AuditCheckpoints every
	// AuditCheckpointEvery entries (audit.go); both live outside the data dir.
	AuditKey             string
	AuditCheckpoints     string
	AuditCheckpointEvery string
	// KeyMaxTTL, RateLimit and RateBurst are read by newAccess and
	// rateLimits (keys.go); empty means the defaults.
	KeyMaxTTL string
	RateLimit string
	RateBurst string
	// AuthFailLimit and AuthFailWindow are read by parseClientLimits
	// (limits.go); empty means api's defaults.
	AuthFailLimit  string
	AuthFailWindow string
	// MaxConns bounds open connections (connlimit.go); empty means
	// DefaultMaxConns.
	MaxConns string
	// The NSW feed (feed.go): webhook hosts allowed, loopback receivers
	// ("on", "off", or "" for on when serving on loopback), how long
	// events are kept, how long a rotated secret keeps signing, and the
	// retry schedule of deliveries.
	WebhookAllow    string
	WebhookLoopback string
	EventRetention  string
	SecretOverlap   string
	WebhookSchedule string
	// BackupDir receives the backups POST /v1/admin/backups and backupNow
	// take (default: <data dir>.backups, beside the data dir); BackupKeep
	// is how many of them are kept (default 7, 0 keeps all).
	BackupDir  string
	BackupKeep string
}

func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.DataDir, "data-dir", env("KTCN_DATA_DIR", "./data"), "badger directory")
	fs.StringVar(&c.Addr, "addr", env("KTCN_ADDR", "127.0.0.1:8080"), "listen address")
	fs.StringVar(&c.LogLevel, "log-level", env("KTCN_LOG_LEVEL", "info"), "log level")
	fs.StringVar(&c.Fixtures, "fixtures", env("KTCN_FIXTURES", "on"), `"off" to skip sample data`)
	fs.StringVar(&c.Policy, "policy", env("KTCN_POLICY", ""), "policy document path")
	fs.StringVar(&c.QuotaSecret, "quota-secret", env("KTCN_QUOTA_SECRET", ""), "quota master secret file (default: beside the data dir)")
	fs.StringVar(&c.AuditKey, "audit-key", env("KTCN_AUDIT_KEY", ""), "audit checkpoint signing key (default: beside the data dir)")
	fs.StringVar(&c.AuditCheckpoints, "audit-checkpoints", env("KTCN_AUDIT_CHECKPOINTS", ""), "signed audit checkpoint file (default: beside the data dir)")
	fs.StringVar(&c.AuditCheckpointEvery, "audit-checkpoint-every", env("KTCN_AUDIT_CHECKPOINT_EVERY", ""), "audit entries between checkpoints (default 1000)")
	fs.StringVar(&c.KeyMaxTTL, "key-max-ttl", env("KTCN_KEY_MAX_TTL", ""), "longest API key lifetime (e.g. 366d)")
	fs.StringVar(&c.RateLimit, "rate-limit", env("KTCN_RATE_LIMIT", ""), "requests per second per principal")
	fs.StringVar(&c.RateBurst, "rate-burst", env("KTCN_RATE_BURST", ""), "burst of requests per principal")
	fs.StringVar(&c.AuthFailLimit, "auth-fail-limit", env("KTCN_AUTH_FAIL_LIMIT", ""), "failed authentications from one address before 429 (default 20)")
	fs.StringVar(&c.AuthFailWindow, "auth-fail-window", env("KTCN_AUTH_FAIL_WINDOW", ""), "window failed authentications are counted in (default 1m)")
	fs.StringVar(&c.MaxConns, "max-conns", env("KTCN_MAX_CONNS", ""), "connections held open at once (default 1024)")
	fs.StringVar(&c.WebhookAllow, "webhook-allow", env("KTCN_WEBHOOK_ALLOW", ""), "hosts webhooks may be sent to, comma-separated (*.example.vn for subdomains)")
	fs.StringVar(&c.WebhookLoopback, "webhook-loopback", env("KTCN_WEBHOOK_LOOPBACK", ""), `"on" to allow loopback receivers (default: on when serving on loopback)`)
	fs.StringVar(&c.EventRetention, "event-retention", env("KTCN_EVENT_RETENTION", ""), "how long feed events are kept once every webhook has them (default 30d)")
	fs.StringVar(&c.SecretOverlap, "webhook-secret-overlap", env("KTCN_WEBHOOK_SECRET_OVERLAP", ""), "how long a rotated webhook secret keeps signing (default 24h)")
	fs.StringVar(&c.WebhookSchedule, "webhook-retries", env("KTCN_WEBHOOK_RETRIES", ""), "delivery retry delays, comma-separated (default 0s,5s,5m,30m,2h,5h,10h,14h,20h,24h)")
	fs.StringVar(&c.BackupDir, "backup-dir", env("KTCN_BACKUP_DIR", ""), "backup directory (default: <data dir>.backups, beside the data dir)")
	fs.StringVar(&c.BackupKeep, "backup-keep", env("KTCN_BACKUP_KEEP", ""), "backups kept in the backup directory, newest first (default 7; 0 keeps all)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.AuditKey == "" {
		c.AuditKey = defaultAuditKeyPath(c.DataDir)
	}
	if c.AuditCheckpoints == "" {
		c.AuditCheckpoints = defaultCheckpointPath(c.DataDir)
	}
	if c.QuotaSecret == "" {
		c.QuotaSecret = defaultQuotaSecretPath(c.DataDir)
	}
	if c.BackupDir == "" {
		c.BackupDir = besideDataDir(c.DataDir, ".backups")
	}
	return c, nil
}

// Run is the whole program behind main, driven by tests end to end.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd := args[0]; {
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		c, ok := findCommand(args)
		if !ok {
			fmt.Fprintf(stderr, "ktcn: unknown command %q\n\n%s", strings.Join(args, " "), usage)
			return 2
		}
		err = c.run(ctx, args[len(c.words):], getenv, stdout, stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ktcn: %v\n", err)
		return 1
	}
	return 0
}

// command is one subcommand: the words that name it and what it runs.
type command struct {
	words []string
	run   func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

// commands lists every subcommand; each lives in its own file.
var commands = []command{
	{[]string{"serve"}, runServe},
	{[]string{"fixtures", "load"}, runFixturesLoad},
	{[]string{"fixtures", "generate"}, runFixturesGenerate},
	{[]string{"quota", "reveal"}, runQuotaReveal},
	{[]string{"verify", "quota"}, runVerifyQuota},
	{[]string{"verify", "audit"}, runVerifyAudit},
	{[]string{"audit", "pubkey"}, runAuditPubkey},
	{[]string{"keys", "create"}, runKeysCreate},
	{[]string{"keys", "list"}, runKeysList},
	{[]string{"keys", "revoke"}, runKeysRevoke},
	{[]string{"loadgen"}, runLoadgen},
	{[]string{"nsw-receiver"}, runReceiver},
	{[]string{"backup"}, runBackup},
	{[]string{"restore"}, runRestore},
	{[]string{"backtest"}, runBacktest},
}

// findCommand picks the command whose words start args, longest first.
func findCommand(args []string) (command, bool) {
	best, found := command{}, false
	for _, c := range commands {
		if len(c.words) <= len(args) && strings.Join(args[:len(c.words)], " ") == strings.Join(c.words, " ") &&
			(!found || len(c.words) > len(best.words)) {
			best, found = c, true
		}
	}
	return best, found
}

func runServe(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	return withApp(ctx, "serve", args, getenv, stderr, func(a *app) error { return a.serve(ctx, nil) })
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
	backtests := backtest.NewJobs(ctx, backtest.JobsConfig{Service: a.svc, Store: a.store, Keys: a.quotaKeys, Generate: generatedHistory})
	srv := &http.Server{
		Handler: api.New(api.Config{Service: a.svc, Access: a.access, Feed: a.feed, Backups: a.backups, Logger: a.log, Jobs: jobs, Ready: a.ready(jobs),
			Backtests: backtests,
			RateLimit: perSecond, RateBurst: burst, AuthFailures: limits.authFailures, AuthFailWindow: limits.authFailWindow}),
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

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
)

// Config is the service configuration: each field is one setting of the
// settings table below, resolved flag > environment > config file >
// default and checked before anything starts.
type Config struct {
	// ConfigFile is the TOML file the settings were read from, if any.
	ConfigFile string
	DataDir    string
	Addr       string
	LogLevel   string
	Fixtures   string
	Policy     string
	// SecretsDir holds the files below that must never be inside the data
	// dir, so a copy of the database carries none of them.
	SecretsDir string
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
	// take; BackupKeep is how many of them are kept (0 keeps all);
	// BackupRate bounds how fast a backup reads the store, in MiB a
	// second (0: unbounded).
	BackupDir  string
	BackupKeep string
	BackupRate string
	// DebugAddr, when set, serves net/http/pprof on this loopback address
	// (debug.go); empty, the default, serves nothing.
	DebugAddr string

	// legacy lists the files found at their old place beside the data dir
	// and used there; the command logs a warning for each.
	legacy []legacyPath
}

// setting is one configuration setting: its flag (also its config-file
// key), environment variable, default and check. README's Configuration
// table documents these rows, and TestReadmeConfigurationTable holds the
// two together.
type setting struct {
	flag string
	env  string
	// def is the value when nothing sets one; shown documents a default
	// that is derived at start (a path from the data dir, "on when ...")
	// rather than a fixed value.
	def   string
	shown string
	help  string
	// noFile: not read from a config file (the config file's own path).
	noFile bool
	field  func(*Config) *string
	// check refuses a bad value, saying why; settings before this one in
	// the table are already resolved and checked in c.
	check func(v string, c *Config) error
}

// fileKey is the setting's key in a config file, "" if it has none.
func (s setting) fileKey() string {
	if s.noFile {
		return ""
	}
	return s.flag
}

// defaultDoc is the default as README and -h give it.
func (s setting) defaultDoc() string {
	if s.shown != "" {
		return s.shown
	}
	return "`" + s.def + "`"
}

// The settings, in the order they are resolved and checked: data-dir
// before the paths checked against it, addr before webhook-loopback.
var settings = []setting{
	{flag: "config", env: "KTCN_CONFIG", shown: "none", noFile: true, check: checkFile,
		help:  "TOML file of settings, keyed by flag name; flags and environment override it",
		field: func(c *Config) *string { return &c.ConfigFile }},
	{flag: "data-dir", env: "KTCN_DATA_DIR", def: "./data", check: checkDataDir,
		help:  "badger directory",
		field: func(c *Config) *string { return &c.DataDir }},
	{flag: "addr", env: "KTCN_ADDR", def: "127.0.0.1:8080", check: checkAddr,
		help:  "listen address, host:port",
		field: func(c *Config) *string { return &c.Addr }},
	{flag: "log-level", env: "KTCN_LOG_LEVEL", def: "info", check: checkLogLevel,
		help:  "debug, info, warn or error",
		field: func(c *Config) *string { return &c.LogLevel }},
	{flag: "fixtures", env: "KTCN_FIXTURES", def: "on", check: oneOf("on", "off", "reference"),
		help:  "sample data loaded into a new data dir: on (reference data and a year of history), reference (reference data only), off",
		field: func(c *Config) *string { return &c.Fixtures }},
	{flag: "policy", env: "KTCN_POLICY", shown: "the embedded default policy", check: checkPolicy,
		help:  "policy document (JSON) put in force on a new data dir",
		field: func(c *Config) *string { return &c.Policy }},
	{flag: "secrets-dir", env: "KTCN_SECRETS_DIR", shown: "`<data dir's parent>/var`", check: outsideDataDir,
		help:  "folder of the quota secret, the audit key and the checkpoints (never inside the data dir)",
		field: func(c *Config) *string { return &c.SecretsDir }},
	{flag: "quota-secret", env: "KTCN_QUOTA_SECRET", shown: "`<secrets dir>/<data dir name>.quota-secret`", check: outsideDataDir,
		help:  "quota master secret file, hex, mode 0600 (serve creates it)",
		field: func(c *Config) *string { return &c.QuotaSecret }},
	{flag: "audit-key", env: "KTCN_AUDIT_KEY", shown: "`<secrets dir>/<data dir name>.audit-key`", check: outsideDataDir,
		help:  "audit checkpoint signing key, hex, mode 0600 (serve creates it)",
		field: func(c *Config) *string { return &c.AuditKey }},
	{flag: "audit-checkpoints", env: "KTCN_AUDIT_CHECKPOINTS", shown: "`<secrets dir>/<data dir name>.audit-checkpoints`", check: outsideDataDir,
		help:  "file the signed audit checkpoints are appended to",
		field: func(c *Config) *string { return &c.AuditCheckpoints }},
	{flag: "audit-checkpoint-every", env: "KTCN_AUDIT_CHECKPOINT_EVERY", def: "1000", check: wholeNumber(1, 1<<40),
		help:  "audit entries between checkpoints",
		field: func(c *Config) *string { return &c.AuditCheckpointEvery }},
	{flag: "key-max-ttl", env: "KTCN_KEY_MAX_TTL", def: "366d", check: checkLifetime,
		help:  "longest API key lifetime, days (366d) or a Go duration (720h)",
		field: func(c *Config) *string { return &c.KeyMaxTTL }},
	{flag: "rate-limit", env: "KTCN_RATE_LIMIT", def: "5000", check: checkRate,
		help:  "requests per second per principal",
		field: func(c *Config) *string { return &c.RateLimit }},
	{flag: "rate-burst", env: "KTCN_RATE_BURST", def: "10000", check: wholeNumber(1, 1<<30),
		help:  "requests a principal may send at once",
		field: func(c *Config) *string { return &c.RateBurst }},
	{flag: "auth-fail-limit", env: "KTCN_AUTH_FAIL_LIMIT", def: "20", check: wholeNumber(1, 1<<30),
		help:  "failed authentications from one address before 429",
		field: func(c *Config) *string { return &c.AuthFailLimit }},
	{flag: "auth-fail-window", env: "KTCN_AUTH_FAIL_WINDOW", def: "1m", check: checkAuthFailWindow,
		help:  "the window failed authentications are counted in, 1s to 24h",
		field: func(c *Config) *string { return &c.AuthFailWindow }},
	{flag: "max-conns", env: "KTCN_MAX_CONNS", def: "1024", check: wholeNumber(1, 1_000_000),
		help:  "connections held open at once",
		field: func(c *Config) *string { return &c.MaxConns }},
	{flag: "webhook-allow", env: "KTCN_WEBHOOK_ALLOW", shown: "none", check: checkHosts,
		help:  "hosts webhooks may be sent to, comma-separated (*.example.vn for subdomains)",
		field: func(c *Config) *string { return &c.WebhookAllow }},
	{flag: "webhook-loopback", env: "KTCN_WEBHOOK_LOOPBACK", shown: "on when `addr` is loopback, else off", check: oneOf("on", "off"),
		help:  "on to allow webhooks to loopback receivers, off to refuse them",
		field: func(c *Config) *string { return &c.WebhookLoopback }},
	{flag: "event-retention", env: "KTCN_EVENT_RETENTION", def: "30d", check: checkLifetime,
		help:  "how long feed events are kept once every webhook has them",
		field: func(c *Config) *string { return &c.EventRetention }},
	{flag: "webhook-secret-overlap", env: "KTCN_WEBHOOK_SECRET_OVERLAP", def: "24h", check: checkLifetime,
		help:  "how long a rotated webhook secret keeps signing",
		field: func(c *Config) *string { return &c.SecretOverlap }},
	// The delays between attempts, not the times of the attempts: attempts
	// at 0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h.
	{flag: "webhook-retries", env: "KTCN_WEBHOOK_RETRIES", def: "0s,5s,4m55s,25m,1h30m,3h,5h,4h,6h,4h", check: checkRetries,
		help:  "delays before each delivery attempt, comma-separated",
		field: func(c *Config) *string { return &c.WebhookSchedule }},
	{flag: "backup-dir", env: "KTCN_BACKUP_DIR", shown: "`<data dir's parent>/var/<data dir name>.backups`", check: outsideDataDir,
		help:  "folder of the backups POST /v1/admin/backups takes (never inside the data dir)",
		field: func(c *Config) *string { return &c.BackupDir }},
	{flag: "backup-keep", env: "KTCN_BACKUP_KEEP", def: "7", check: wholeNumber(0, 1<<20),
		help:  "backups kept in the backup dir, newest first; 0 keeps all",
		field: func(c *Config) *string { return &c.BackupKeep }},
	{flag: "backup-rate", env: "KTCN_BACKUP_RATE", def: strconv.Itoa(DefaultBackupRate), check: wholeNumber(0, 1<<20),
		help:  "MiB a second a backup reads the store at, so it leaves the decisions their cores; 0 is unbounded",
		field: func(c *Config) *string { return &c.BackupRate }},
	{flag: "debug-addr", env: "KTCN_DEBUG_ADDR", shown: "off", check: checkDebugAddr,
		help:  "loopback host:port serving net/http/pprof (CPU, heap, block, mutex, trace) with block and mutex profiling on; empty is off",
		field: func(c *Config) *string { return &c.DebugAddr }},
}

// configError is a setting the command refuses to start with: Run exits 2.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// settingError names the setting, where its value came from and why it is
// refused.
func settingError(s setting, from string, err error) error {
	return configError{fmt.Errorf("invalid setting %s (%s): %w (from %s)", s.flag, s.env, err, from)}
}

const settingsHelp = `Flags, each also an environment variable [KTCN_…] and, but -config, a key of
the config file named after the flag. A flag wins over the environment, the
environment over the file, the file over the default (README, Configuration):
`

// configFlags registers every setting on a flag set named after the
// command; parseConfig reads the values back from c.
func configFlags(name string, c *Config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range settings {
		help := s.help + " [" + s.env + "]"
		if s.shown != "" {
			help += " (default: " + strings.ReplaceAll(s.shown, "`", "") + ")"
		}
		fs.StringVar(s.field(c), s.flag, s.def, help)
	}
	fs.Usage = func() {
		synopsis, summary := name+" [flags]", ""
		if cmd, ok := findCommand(strings.Fields(name)); ok {
			synopsis, summary = cmd.synopsis(), cmd.summary
		}
		fmt.Fprintf(stderr, "Usage: ktcn %s\n\n%s\n\n%s", synopsis, summary, settingsHelp)
		fs.PrintDefaults()
	}
	return fs
}

// parseConfig reads the settings of a command that opens the data dir:
// each from its flag, else its environment variable, else the config file
// (-config, KTCN_CONFIG), else its default; then checks every one, so a
// bad setting stops the command before it opens anything. extra registers
// the command's own flags.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	var c Config
	fs := configFlags(name, &c, stderr)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, configError{err}
	}
	if fs.NArg() > 0 {
		return c, configError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var file map[string]string
	for _, s := range settings {
		p, from := s.field(&c), "the default"
		switch {
		case onCommandLine[s.flag]:
			from = "the command line"
		case getenv(s.env) != "":
			*p, from = getenv(s.env), "the environment"
		case file[s.flag] != "":
			*p, from = file[s.flag], "config file "+c.ConfigFile
		default:
			*p = s.def
		}
		if s.check != nil {
			if err := s.check(*p, &c); err != nil {
				return c, settingError(s, from, err)
			}
		}
		if s.flag == "config" && c.ConfigFile != "" {
			var err error
			if file, err = readConfigFile(c.ConfigFile); err != nil {
				return c, configError{err}
			}
		}
	}
	c.resolvePaths()
	// The paths derived from the data dir are checked as given ones are:
	// a data dir of / would put <parent>/var inside it.
	for _, s := range settings {
		switch s.flag {
		case "quota-secret", "audit-key", "audit-checkpoints", "backup-dir":
			if err := outsideDataDir(*s.field(&c), &c); err != nil {
				return c, settingError(s, "its default", err)
			}
		}
	}
	return c, nil
}

// readConfigFile reads a TOML file of settings keyed by flag name. A key
// that is no setting refuses the file: a misspelt key silently ignored
// would leave the default in force while the operator believes otherwise.
func readConfigFile(path string) (map[string]string, error) {
	var raw map[string]toml.Primitive
	md, err := toml.DecodeFile(path, &raw)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	// A key that is no setting refuses the file, first in the file's order.
	// Undecoded cannot tell: a map's own keys all count as decoded.
	known := map[string]setting{}
	for _, s := range settings {
		if k := s.fileKey(); k != "" {
			known[k] = s
		}
	}
	for _, k := range md.Keys() {
		if _, ok := known[k[0]]; !ok {
			return nil, fmt.Errorf("config file %s: unknown key %q (the keys are the flags' names: ktcn serve -h)", path, k[0])
		}
	}
	out := make(map[string]string, len(raw))
	for k, p := range raw {
		var v any
		if err := md.PrimitiveDecode(p, &v); err != nil {
			return nil, fmt.Errorf("config file %s: key %s: %w", path, k, err)
		}
		str, err := fileValue(v)
		if err != nil {
			return nil, settingError(known[k], "config file "+path, err)
		}
		out[k] = str
	}
	return out, nil
}

// fileValue turns a TOML value into the setting's text: numbers as
// written, true/false as on/off, lists (of hosts, of delays) joined by
// commas. An empty string would be taken for "not set", so it is refused.
func fileValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		if v == "" {
			return "", errors.New(`"" is empty: leave the key out for the default`)
		}
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		if v {
			return "on", nil
		}
		return "off", nil
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, err := fileValue(e)
			if err != nil {
				return "", err
			}
			if _, nested := e.([]any); nested {
				return "", errors.New("a list of lists is no setting")
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("a %T is no setting: want a string, number, true/false or a list", v)
}

// The checks. Each says what is wrong with the value, quoted; the caller
// names the setting.

func checkFile(v string, _ *Config) error {
	if v == "" {
		return nil
	}
	info, err := os.Stat(v)
	if err != nil {
		return fmt.Errorf("%q: %w", v, errors.Unwrap(err))
	}
	if info.IsDir() {
		return fmt.Errorf("%q is a directory, not a file", v)
	}
	return nil
}

// checkPolicy reads and parses the policy, so a policy that does not
// parse is refused like any bad setting; loading it again later is cheap.
func checkPolicy(v string, c *Config) error {
	if v == "" {
		return nil
	}
	if err := checkFile(v, c); err != nil {
		return err
	}
	_, err := loadPolicy(v)
	return err
}

func checkDataDir(v string, _ *Config) error {
	if v == "" {
		return errors.New("it is empty: name the badger directory")
	}
	if info, err := os.Stat(v); err == nil && !info.IsDir() {
		return fmt.Errorf("%q is a file, not a directory", v)
	}
	return nil
}

func checkAddr(v string, _ *Config) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", v, port)
	}
	return nil
}

// checkDebugAddr admits only a loopback host: the profiles show request
// bodies' shapes and timings, and /debug/pprof has no authentication.
func checkDebugAddr(v string, c *Config) error {
	if v == "" {
		return nil
	}
	if err := checkAddr(v, c); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(v)
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: the debug listener has no authentication, so only a loopback host (127.0.0.1, ::1, localhost)", v)
	}
	return nil
}

func checkLogLevel(v string, _ *Config) error {
	if _, err := newLogger(v, io.Discard); err != nil {
		return fmt.Errorf("%q: want debug, info, warn or error", v)
	}
	return nil
}

func oneOf(values ...string) func(string, *Config) error {
	return func(v string, _ *Config) error {
		if v == "" {
			return nil // the derived default
		}
		for _, w := range values {
			if strings.EqualFold(v, w) {
				return nil
			}
		}
		return fmt.Errorf("%q: want %s", v, strings.Join(values, ", "))
	}
}

// wholeSetting reads a whole-number setting that the table checks with
// wholeNumber(lo, hi), def when it is unset. It checks again, with the
// same check, for a Config not built by parseConfig.
func wholeSetting(flag, v string, def int, lo, hi int64) (int, error) {
	if v == "" {
		return def, nil
	}
	if err := wholeNumber(lo, hi)(v, nil); err != nil {
		return 0, fmt.Errorf("-%s %w", flag, err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("-%s %q: %w", flag, v, err)
	}
	return n, nil
}

func wholeNumber(lo, hi int64) func(string, *Config) error {
	return func(v string, _ *Config) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%q: want a whole number from %d to %d", v, lo, hi)
		}
		return nil
	}
}

func checkRate(v string, _ *Config) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	if !(f > 0 && f <= 1e9) {
		return fmt.Errorf("%q: want more than 0 and at most 1e9", v)
	}
	return nil
}

func checkLifetime(v string, _ *Config) error {
	_, err := parseLifetime(v)
	return err
}

func checkAuthFailWindow(v string, _ *Config) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 1m or 30s", v)
	}
	if d < time.Second || d > 24*time.Hour {
		return fmt.Errorf("%q: want a duration from 1s to 24h", v)
	}
	return nil
}

func checkRetries(v string, _ *Config) error {
	if _, err := retrySchedule(v); err != nil {
		return fmt.Errorf("%q: want delays such as 0s,5s,5m", v)
	}
	return nil
}

// checkHosts wants host names, not URLs: the allowlist is matched against
// a webhook URL's host.
func checkHosts(v string, _ *Config) error {
	for h := range strings.SplitSeq(v, ",") {
		h = strings.TrimSpace(h)
		name := strings.TrimPrefix(h, "*.")
		ok := name != ""
		for label := range strings.SplitSeq(name, ".") {
			ok = ok && label != "" && len(label) <= 63 && strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
		}
		if h != "" && !ok {
			return fmt.Errorf("%q: %q is not a host name such as nsw.gov.vn or *.customs.gov.vn", v, h)
		}
	}
	return nil
}

// outsideDataDir refuses a path in (or equal to) the data dir: a copy of
// the database must carry neither the secrets nor the backups.
func outsideDataDir(v string, c *Config) error {
	if v == "" {
		return nil // the derived default, outside by construction
	}
	if insideDataDir(v, c.DataDir) || sameDir(v, c.DataDir) {
		return fmt.Errorf("%q is inside the data dir %s: a copy of the database must not carry it", v, c.DataDir)
	}
	return nil
}

func sameDir(a, b string) bool {
	absA, err1 := filepath.Abs(a)
	absB, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && absA == absB
}

// Default paths. The secrets and the backups live outside the data dir, in
// <data dir's parent>/var: `make run` (data dir ./data) keeps them in the
// git-ignored ./var rather than loose in the repository root, where they
// lived beside the data dir before. Each is named after the data dir, so
// two data dirs side by side keep their own.

// legacyPath is a file or folder found at its old place beside the data
// dir and not at the new one.
type legacyPath struct {
	setting, path, instead string
}

// defaultSecretsDir: ./data → ./var.
func defaultSecretsDir(dataDir string) string {
	parent, _ := dataDirParts(dataDir)
	return filepath.Join(parent, "var")
}

// dataDirParts is the data dir's parent and name; a data dir of "." or
// ".." is made absolute first, so its secrets get a real name and land
// outside it.
func dataDirParts(dataDir string) (parent, name string) {
	clean := filepath.Clean(dataDir)
	if b := filepath.Base(clean); b == "." || b == ".." {
		if abs, err := filepath.Abs(clean); err == nil {
			clean = abs
		}
	}
	return filepath.Dir(clean), filepath.Base(clean)
}

// defaultPath is <dir>/<data dir name><suffix>, unless only the legacy
// <data dir><suffix> beside the data dir exists: then that one, so an
// upgrade never silently starts a new quota secret or audit key, which
// would break the verification of everything signed or drawn before.
func defaultPath(dir, dataDir, suffix string) (path string, legacy bool) {
	_, name := dataDirParts(dataDir)
	path = filepath.Join(dir, name+suffix)
	old := besideDataDir(dataDir, suffix)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(old); err == nil {
			return old, true
		}
	}
	return path, false
}

// defaultSecretPath is the default of a secret of dataDir for commands
// that take the secrets dir from the environment only (fixtures generate,
// restore's advice): the same as serve's.
func defaultSecretPath(secretsDir, dataDir, suffix string) string {
	if secretsDir == "" {
		secretsDir = defaultSecretsDir(dataDir)
	}
	path, _ := defaultPath(secretsDir, dataDir, suffix)
	return path
}

// resolvePaths fills the path settings left to their defaults.
func (c *Config) resolvePaths() {
	if c.SecretsDir == "" {
		c.SecretsDir = defaultSecretsDir(c.DataDir)
	}
	fill := func(p *string, name, dir, suffix string) {
		if *p != "" {
			return
		}
		path, legacy := defaultPath(dir, c.DataDir, suffix)
		*p = path
		if legacy {
			_, base := dataDirParts(c.DataDir)
			c.legacy = append(c.legacy, legacyPath{setting: name, path: path, instead: filepath.Join(dir, base+suffix)})
		}
	}
	fill(&c.QuotaSecret, "quota-secret", c.SecretsDir, ".quota-secret")
	fill(&c.AuditKey, "audit-key", c.SecretsDir, ".audit-key")
	fill(&c.AuditCheckpoints, "audit-checkpoints", c.SecretsDir, ".audit-checkpoints")
	fill(&c.BackupDir, "backup-dir", defaultSecretsDir(c.DataDir), ".backups")
}

// warnLegacy logs each file still used at its old place beside the data
// dir: it keeps working, but belongs in the secrets dir.
func (c Config) warnLegacy(log zerolog.Logger) {
	for _, l := range c.legacy {
		log.Warn().Str("setting", l.setting).Str("path", l.path).Str("instead", l.instead).
			Msg("using a file at its old place beside the data dir: move it to the new default (stopped server) or set the setting to keep it there")
	}
}

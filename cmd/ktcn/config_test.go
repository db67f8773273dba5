package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/feed"
)

// readmeRow is one row of README's Configuration table.
type readmeRow struct{ flag, env, key, def string }

// readmeConfigTable reads the table of README's "## Configuration" section:
// | flag | environment variable | config-file key | default | meaning |.
func readmeConfigTable(t *testing.T, readme string) []readmeRow {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no ## Configuration section")
	}
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var rows []readmeRow
	for line := range strings.Lines(section) {
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) != 7 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`-") {
			continue // not a setting's row: prose, the header, its rule
		}
		unquote := func(s string) string { return strings.Trim(strings.TrimSpace(s), "`") }
		rows = append(rows, readmeRow{flag: strings.TrimPrefix(unquote(cells[1]), "-"), env: unquote(cells[2]),
			key: unquote(cells[3]), def: strings.TrimSpace(cells[4])})
	}
	if len(rows) == 0 {
		t.Fatal("no settings table in README's Configuration section")
	}
	return rows
}

// TestReadmeConfigurationTable holds README's table and the code together
// both ways: every flag serve registers has a row with its environment
// variable, file key and default, and every row is a setting serve has.
func TestReadmeConfigurationTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]readmeRow{}
	for _, r := range readmeConfigTable(t, string(readme)) {
		if _, dup := rows[r.flag]; dup {
			t.Errorf("README: two rows for -%s", r.flag)
		}
		rows[r.flag] = r
	}
	bySetting := map[string]setting{}
	for _, s := range settings {
		bySetting[s.flag] = s
	}
	var c Config
	fs := configFlags("serve", &c, io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		s, ok := bySetting[f.Name]
		if !ok {
			t.Errorf("serve registers -%s, which is no setting of the table in config.go", f.Name)
			return
		}
		r, ok := rows[f.Name]
		if !ok {
			t.Errorf("README's Configuration table has no row for -%s", f.Name)
			return
		}
		key := s.fileKey()
		if key == "" {
			key = "—"
		}
		if r.env != s.env || r.key != key || r.def != s.defaultDoc() {
			t.Errorf("README row for -%s says %s, %s, default %s; the code %s, %s, default %s",
				f.Name, r.env, r.key, r.def, s.env, key, s.defaultDoc())
		}
	})
	for name := range rows {
		if fs.Lookup(name) == nil {
			t.Errorf("README's Configuration table has a row for -%s, which serve does not have", name)
		}
	}
}

// TestSettingDefaultsAreTheLibraries: a default in the table is the
// value the code it configures would use anyway, so README cannot
// document one default while another is in force.
func TestSettingDefaultsAreTheLibraries(t *testing.T) {
	def := map[string]string{}
	for _, s := range settings {
		def[s.flag] = s.def
	}
	lifetime := func(flag string) string {
		d, err := parseLifetime(def[flag])
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	window, err := time.ParseDuration(def["auth-fail-window"])
	if err != nil {
		t.Fatal(err)
	}
	retries, err := retrySchedule(def["webhook-retries"])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, got, want string }{
		{"key-max-ttl", lifetime("key-max-ttl"), access.DefaultMaxKeyTTL.String()},
		{"event-retention", lifetime("event-retention"), inspection.DefaultRetention.String()},
		{"webhook-secret-overlap", lifetime("webhook-secret-overlap"), inspection.DefaultRotationOverlap.String()},
		{"webhook-retries", fmt.Sprint(retries), fmt.Sprint(feed.DefaultSchedule())},
		{"rate-limit", def["rate-limit"], strconv.Itoa(api.DefaultRateLimit)},
		{"rate-burst", def["rate-burst"], strconv.Itoa(api.DefaultRateBurst)},
		{"auth-fail-limit", def["auth-fail-limit"], strconv.Itoa(api.DefaultAuthFailures)},
		{"auth-fail-window", window.String(), api.DefaultAuthFailWindow.String()},
		{"max-conns", def["max-conns"], strconv.Itoa(DefaultMaxConns)},
		{"audit-checkpoint-every", def["audit-checkpoint-every"], strconv.Itoa(audit.DefaultCheckpointEvery)},
		{"backup-keep", def["backup-keep"], strconv.Itoa(DefaultBackupKeep)},
		{"backup-rate", def["backup-rate"], strconv.Itoa(DefaultBackupRate)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: the table's default is %s, the code's %s", tc.flag, tc.got, tc.want)
		}
	}
}

// TestInvalidSettingRefusesToStart: a bad value of any setting, from a
// flag, the environment or the config file, exits 2 naming the setting
// and its environment variable, before the data dir is created.
func TestInvalidSettingRefusesToStart(t *testing.T) {
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	aFile := filepath.Join(root, "a-file")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct{ value, why string }{
		"config":                 {filepath.Join(root, "missing.toml"), "no such file"},
		"data-dir":               {aFile, "not a directory"},
		"addr":                   {"8080", "is not host:port"},
		"log-level":              {"loud", "want debug, info, warn or error"},
		"fixtures":               {"maybe", "want on, off, reference"},
		"policy":                 {root, "is a directory"},
		"secrets-dir":            {filepath.Join(dataDir, "var"), "inside the data dir"},
		"quota-secret":           {filepath.Join(dataDir, "q"), "inside the data dir"},
		"audit-key":              {filepath.Join(dataDir, "k"), "inside the data dir"},
		"audit-checkpoints":      {dataDir, "inside the data dir"},
		"audit-checkpoint-every": {"often", "is not a whole number"},
		"key-max-ttl":            {"0d", "whole number of days"},
		"rate-limit":             {"abc", `"abc" is not a number`},
		"rate-burst":             {"-1", "want a whole number from 1"},
		"auth-fail-limit":        {"1.5", "is not a whole number"},
		"auth-fail-window":       {"1ms", "from 1s to 24h"},
		"max-conns":              {"0", "want a whole number from 1 to 1000000"},
		"webhook-allow":          {"nsw.gov.vn,https://x.vn/hook", "is not a host name"},
		"webhook-loopback":       {"yes", "want on, off"},
		"event-retention":        {"forever", "want a lifetime"},
		"webhook-secret-overlap": {"-1h", "want a lifetime"},
		"webhook-retries":        {"0s,soon", "want delays"},
		"backup-dir":             {filepath.Join(dataDir, "backups"), "inside the data dir"},
		"backup-keep":            {"-1", "want a whole number from 0"},
		"backup-rate":            {"fast", "is not a whole number"},
		"debug-addr":             {"0.0.0.0:6060", "only a loopback host"},
	}
	for _, s := range settings {
		b, ok := bad[s.flag]
		if !ok {
			t.Errorf("no bad value tried for -%s", s.flag)
			continue
		}
		delete(bad, s.flag)
		// The data dir (a flag, so it wins) is the test's own, but when it
		// is the setting tried.
		base := []string{"-data-dir", dataDir}
		if s.flag == "data-dir" {
			base = nil
		}
		// Should the value pass, serve stops at the deadline, on a port of
		// its own.
		if s.flag != "addr" {
			base = append(base, "-addr", "127.0.0.1:0")
		}
		sources := map[string]func() ([]string, map[string]string){
			"the command line": func() ([]string, map[string]string) {
				return append(slices.Clone(base), "-"+s.flag, b.value), map[string]string{}
			},
			"the environment": func() ([]string, map[string]string) {
				return base, map[string]string{s.env: b.value}
			},
		}
		if s.fileKey() != "" && s.flag != "data-dir" {
			sources["config file"] = func() ([]string, map[string]string) {
				file := filepath.Join(root, s.flag+".toml")
				doc := s.fileKey() + " = " + tomlString(b.value) + "\n"
				if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"-data-dir", dataDir, "-config", file}, map[string]string{}
			}
		}
		for from, setup := range sources {
			t.Run(s.flag+"/"+from, func(t *testing.T) {
				flags, env := setup()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				var out, errw bytes.Buffer
				code := Run(ctx, append([]string{"serve"}, flags...), func(k string) string { return env[k] }, &out, &errw)
				want := "invalid setting " + s.flag + " (" + s.env + "): "
				if code != 2 || !strings.Contains(errw.String(), want) || !strings.Contains(errw.String(), b.why) ||
					!strings.Contains(errw.String(), "from "+from) {
					t.Errorf("exit %d, %q; want 2 with %q, %q and %q", code, errw.String(), want, b.why, "from "+from)
				}
				if _, err := os.Stat(dataDir); err == nil {
					t.Errorf("the data dir was created: something started")
					os.RemoveAll(dataDir)
				}
			})
		}
	}
	for flag := range bad {
		t.Errorf("a bad value for %s, which is no setting", flag)
	}
}

func tomlString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// TestConfigFilePrecedence: flag > environment > config file > default,
// TOML numbers, booleans and lists read as the flags' text.
func TestConfigFilePrecedence(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "ktcn.toml")
	doc := `# ktcn settings
data-dir = "` + filepath.Join(root, "data") + `"
rate-limit = 100
rate-burst = 200
max-conns = 30
webhook-loopback = false
webhook-allow = ["nsw.gov.vn", "*.customs.gov.vn"]
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KTCN_CONFIG": file, "KTCN_RATE_LIMIT": "150", "KTCN_RATE_BURST": "250"}
	c, err := parseConfig("serve", []string{"-rate-limit", "175"}, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ setting, got, want string }{
		{"rate-limit: flag over environment and file", c.RateLimit, "175"},
		{"rate-burst: environment over file", c.RateBurst, "250"},
		{"max-conns: file over default", c.MaxConns, "30"},
		{"auth-fail-limit: default", c.AuthFailLimit, "20"},
		{"data-dir: from the file", c.DataDir, filepath.Join(root, "data")},
		{"webhook-loopback: false is off", c.WebhookLoopback, "off"},
		{"webhook-allow: a list is comma-separated", c.WebhookAllow, "nsw.gov.vn,*.customs.gov.vn"},
		{"quota-secret: derived from the file's data dir", c.QuotaSecret, filepath.Join(root, "var", "data.quota-secret")},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.setting, tc.got, tc.want)
		}
	}
}

// TestConfigFileRefusals: a key that is no setting, a table, a value of
// the wrong kind or a file that does not parse refuse to start (exit 2)
// naming the key and the file.
func TestConfigFileRefusals(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct{ name, doc, want string }{
		{"misspelt", "rate_limit = 5\n", `unknown key "rate_limit"`},
		{"table", "[webhook]\nallow = \"x\"\n", `unknown key "webhook"`},
		{"config in config", "config = \"other.toml\"\n", `unknown key "config"`},
		{"date", "max-conns = 2026-01-01\n", "invalid setting max-conns (KTCN_MAX_CONNS)"},
		{"empty", "addr = \"\"\n", "invalid setting addr (KTCN_ADDR)"},
		{"syntax", "addr = \n", "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			if err := os.WriteFile(file, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			dataDir := filepath.Join(root, "data")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, errw bytes.Buffer
			code := Run(ctx, []string{"serve", "-config", file, "-data-dir", dataDir, "-addr", "127.0.0.1:0"}, func(string) string { return "" }, &out, &errw)
			if code != 2 || !strings.Contains(errw.String(), tc.want) || !strings.Contains(errw.String(), file) {
				t.Errorf("exit %d, %q; want 2 naming %q and the file", code, errw.String(), tc.want)
			}
			if _, err := os.Stat(dataDir); err == nil {
				t.Error("the data dir was created: something started")
				os.RemoveAll(dataDir)
			}
		})
	}
}

// TestUsageListsEveryCommand: ktcn -h, ktcn help and an unknown command
// list every command the dispatch table has, and every command's -h
// prints its flags and exits 0.
func TestUsageListsEveryCommand(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errw bytes.Buffer
		code := Run(context.Background(), args, func(string) string { return "" }, &out, &errw)
		return code, out.String(), errw.String()
	}
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"-h"}, 0}, {[]string{"help"}, 0}, {[]string{"--help"}, 0}, {nil, 2}, {[]string{"launch"}, 2}} {
		code, out, errw := run(tc.args...)
		text := out + errw
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		for _, c := range commands() {
			if !strings.Contains(text, "  "+c.name()+"  ") || !strings.Contains(text, c.summary) {
				t.Errorf("%v: the usage does not list %q with its summary", tc.args, c.name())
			}
		}
	}
	for _, c := range commands() {
		code, out, errw := run(append(slices.Clone(c.words), "-h")...)
		if code != 0 || !strings.Contains(out+errw, "  -") {
			t.Errorf("ktcn %s -h: exit %d, %q; want 0 and its flags", c.name(), code, out+errw)
		}
	}
}

// TestSecretsDirAndLegacyPaths: the secrets default to <data dir's
// parent>/var, named after the data dir; a file left at its old place
// beside the data dir, and not at the new one, is still used and warned
// of, so an upgrade keeps its quota secret and audit key.
func TestSecretsDirAndLegacyPaths(t *testing.T) {
	for _, tc := range []struct {
		name        string
		old, new    bool // which files exist before the command
		env         map[string]string
		wantQuota   func(root string) string
		wantWarning bool
	}{
		{"fresh", false, false, nil, func(r string) string { return filepath.Join(r, "var", "data.quota-secret") }, false},
		{"upgraded: old only", true, false, nil, func(r string) string { return filepath.Join(r, "data.quota-secret") }, true},
		{"moved: both", true, true, nil, func(r string) string { return filepath.Join(r, "var", "data.quota-secret") }, false},
		{"secrets dir set", false, false, map[string]string{"KTCN_SECRETS_DIR": "/secure/ktcn"}, func(string) string { return "/secure/ktcn/data.quota-secret" }, false},
		{"explicit path wins over the old one", true, false, map[string]string{"KTCN_QUOTA_SECRET": "/secure/q"}, func(string) string { return "/secure/q" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			touch := func(path string) {
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.old {
				touch(filepath.Join(root, "data.quota-secret"))
			}
			if tc.new {
				touch(filepath.Join(root, "var", "data.quota-secret"))
			}
			env := map[string]string{"KTCN_DATA_DIR": filepath.Join(root, "data")}
			maps.Copy(env, tc.env)
			c, err := parseConfig("serve", nil, func(k string) string { return env[k] }, io.Discard, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.wantQuota(root); c.QuotaSecret != want {
				t.Errorf("quota secret %s, want %s", c.QuotaSecret, want)
			}
			if c.AuditKey != filepath.Join(c.SecretsDir, "data.audit-key") || c.AuditCheckpoints != filepath.Join(c.SecretsDir, "data.audit-checkpoints") {
				t.Errorf("audit key %s, checkpoints %s: not in the secrets dir %s", c.AuditKey, c.AuditCheckpoints, c.SecretsDir)
			}
			if c.BackupDir != filepath.Join(root, "var", "data.backups") {
				t.Errorf("backup dir %s", c.BackupDir)
			}
			var logs bytes.Buffer
			log, _ := newLogger("warn", &logs)
			c.warnLegacy(log)
			if got := strings.Contains(logs.String(), `"setting":"quota-secret"`); got != tc.wantWarning {
				t.Errorf("warning logged: %v, want %v\n%s", got, tc.wantWarning, logs.String())
			}
		})
	}
}

// TestSecretsOfOddDataDirs: a data dir of "." still gets named secrets
// outside it; one of "/" has no outside, and is refused.
func TestSecretsOfOddDataDirs(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig("serve", []string{"-data-dir", "."}, func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(wd), "var", filepath.Base(wd)+".quota-secret"); c.QuotaSecret != want {
		t.Errorf("data dir .: quota secret %s, want %s", c.QuotaSecret, want)
	}
	_, err = parseConfig("serve", []string{"-data-dir", "/"}, func(string) string { return "" }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "inside the data dir") {
		t.Errorf("data dir /: %v, want the secrets refused as inside it", err)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/store"
)

// The audit log's signing key and checkpoint file (docs/audit.md). Both
// live outside the data dir (in the secrets dir, config.go), like the
// quota master secret: whoever can rewrite the store must not also hold
// the key that signs what the chain looked like, nor the only copy of
// those signatures.

// besideDataDir is where the secrets lived before the secrets dir:
// ./data → ./data.audit-key.
func besideDataDir(dataDir, suffix string) string {
	clean := filepath.Clean(dataDir)
	return filepath.Join(filepath.Dir(clean), filepath.Base(clean)+suffix)
}

func insideDataDir(path, dataDir string) bool {
	absFile, err1 := filepath.Abs(path)
	absData, err2 := filepath.Abs(dataDir)
	if err1 != nil || err2 != nil {
		return false
	}
	// Rel, not a prefix test: a data dir of / ends in the separator.
	rel, err := filepath.Rel(absData, absFile)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// loadAuditKey reads the hex Ed25519 seed. It refuses a file others can
// read and one inside the data dir; when create is set and the file is
// missing it writes a new one (0600); otherwise a missing file gives nil.
func loadAuditKey(path, dataDir string, create bool, log zerolog.Logger) (ed25519.PrivateKey, error) {
	if insideDataDir(path, dataDir) {
		return nil, fmt.Errorf("audit key %s is inside the data dir: a copy of the database must not carry it", path)
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("generate audit key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("audit key dir: %w", err)
		}
		// O_EXCL: two processes starting at once must not each write a key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("write audit key: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(seed) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("write audit key: %w", err)
		}
		key := ed25519.NewKeyFromSeed(seed)
		log.Warn().Str("path", path).Str("public_key", hex.EncodeToString(key.Public().(ed25519.PublicKey))).
			Msg("created a new audit signing key: keep it outside backups of the data dir, and give auditors its public key")
		return key, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	seed, err := readHexSecret(path, "audit key", info)
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit key %s: want a %d-byte Ed25519 seed as hex", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// openAudit wires the checkpointer for a command: serve creates the key if
// it is missing, other commands that write use it if it exists, and the
// verify commands never sign. done writes a final checkpoint of whatever
// the command committed and closes the file; it must run before the store
// closes.
func openAudit(ctx context.Context, cfg Config, name string, db *store.DB, log zerolog.Logger) (audit.Observer, func(), error) {
	noop := func() {}
	if strings.HasPrefix(name, "verify") {
		return nil, noop, nil
	}
	key, err := loadAuditKey(cfg.AuditKey, cfg.DataDir, name == "serve", log)
	if err != nil || key == nil {
		return nil, noop, err
	}
	if insideDataDir(cfg.AuditCheckpoints, cfg.DataDir) {
		return nil, noop, fmt.Errorf("audit checkpoint file %s is inside the data dir: it must outlive a rewrite of the store", cfg.AuditCheckpoints)
	}
	every := uint64(0)
	if cfg.AuditCheckpointEvery != "" {
		if every, err = strconv.ParseUint(cfg.AuditCheckpointEvery, 10, 64); err != nil || every == 0 {
			return nil, noop, fmt.Errorf("-audit-checkpoint-every %q: want a positive whole number of entries", cfg.AuditCheckpointEvery)
		}
	}
	last := uint64(0)
	if raw, err := os.ReadFile(cfg.AuditCheckpoints); err == nil {
		if n := len(raw); n > 0 && raw[n-1] != '\n' {
			// A line torn by a crash mid-append (kill -9): cut it, or every
			// line appended after it would sit behind a line that cannot parse.
			keep := bytes.LastIndexByte(raw, '\n') + 1
			if err := os.Truncate(cfg.AuditCheckpoints, int64(keep)); err != nil {
				return nil, noop, fmt.Errorf("audit checkpoints: cut a torn last line: %w", err)
			}
			log.Warn().Str("path", cfg.AuditCheckpoints).Int("bytes", n-keep).Msg("cut a torn last line from the audit checkpoint file (a crash while writing it)")
			raw = raw[:keep]
		}
		cps, rerr := audit.ReadCheckpoints(bytes.NewReader(raw), key.Public().(ed25519.PublicKey))
		if rerr != nil {
			// Serving goes on, loudly: refusing to start would let whoever
			// spoiled the file stop the service; run verify audit.
			log.Error().Err(rerr).Str("path", cfg.AuditCheckpoints).Msg("audit checkpoint file does not verify: run ktcn verify audit")
		}
		for _, c := range cps {
			last = max(last, c.Seq)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, noop, fmt.Errorf("audit checkpoints: %w", err)
	}
	// The key may live elsewhere (-audit-key) than the checkpoints' folder.
	if err := os.MkdirAll(filepath.Dir(cfg.AuditCheckpoints), 0o700); err != nil {
		return nil, noop, fmt.Errorf("audit checkpoints: %w", err)
	}
	f, err := os.OpenFile(cfg.AuditCheckpoints, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, noop, fmt.Errorf("audit checkpoints: %w", err)
	}
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Key: key, Every: every, Out: f,
		Clock: calendar.SystemClock{}, Logger: log, Last: last})
	if err != nil {
		f.Close()
		return nil, noop, err
	}
	done := func() {
		// Not ctx itself: serve's ends at shutdown, which is exactly when
		// this checkpoint is due.
		head, err := inspection.ChainHead(context.WithoutCancel(ctx), db)
		if err == nil {
			_, _, err = cp.Sync(head)
		}
		if err != nil {
			log.Error().Err(err).Msg("final audit checkpoint")
		}
		if err := f.Close(); err != nil {
			log.Error().Err(err).Msg("close audit checkpoints")
		}
	}
	return cp, done, nil
}

func runAuditPubkey(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig("audit pubkey", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	cfg.warnLegacy(log)
	// The key file alone: no store, so this works while serve runs.
	key, err := loadAuditKey(cfg.AuditKey, cfg.DataDir, false, log)
	if err != nil {
		return err
	}
	if key == nil {
		return fmt.Errorf("no audit key at %s (serve creates one)", cfg.AuditKey)
	}
	fmt.Fprintln(stdout, hex.EncodeToString(key.Public().(ed25519.PublicKey)))
	return nil
}

func runVerifyAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var checkpoints, pubkey string
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&checkpoints, "checkpoints", "", "signed checkpoint file to hold the chain against")
		fs.StringVar(&pubkey, "pubkey", "", "the checkpoints' Ed25519 public key: 64 hex digits, or a file holding them")
	}
	return withAppFlags(ctx, "verify audit", args, getenv, stderr, flags, func(a *app) error {
		var cps []audit.Checkpoint
		if checkpoints != "" {
			// The public key must come from the auditor, not from beside
			// the data dir: whoever rewrote the store may have replaced
			// that key and re-signed the file.
			if pubkey == "" {
				return errors.New("-checkpoints needs -pubkey (from `ktcn audit pubkey`, kept by the auditor)")
			}
			pub, err := audit.ParsePublicKey(pubkey)
			if err != nil {
				raw, rerr := os.ReadFile(pubkey)
				if rerr != nil {
					return fmt.Errorf("-pubkey: neither 64 hex digits nor a readable file: %w", rerr)
				}
				if pub, err = audit.ParsePublicKey(string(raw)); err != nil {
					return fmt.Errorf("-pubkey %s: %w", pubkey, err)
				}
			}
			f, err := os.Open(checkpoints)
			if err != nil {
				return fmt.Errorf("checkpoints: %w", err)
			}
			cps, err = audit.ReadCheckpoints(f, pub)
			f.Close()
			if err != nil {
				return err
			}
		}
		// ~124,000 entries take seconds on each walk: show them move on a
		// terminal (the total is known once the walk reads the head). The
		// chain is walked twice, so the line counts entry reads.
		bar := newProgress(stderr, "verify audit", "entry reads", 0)
		rep, err := a.svc.VerifyAuditProgress(ctx, access.SystemPrincipal(), cps, func(done, total uint64) {
			bar.SetTotal(int64(total))
			bar.Set(int64(done))
		})
		bar.Done()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "audit log verified: %d entries, head %d %s; %d records match their latest entry, none stored beside the log",
			rep.Entries, rep.Head.Seq, rep.Head.Hash, rep.Records)
		if checkpoints != "" {
			fmt.Fprintf(stdout, "; %d signed checkpoints match the chain", rep.Checkpoints)
		}
		fmt.Fprintln(stdout)
		return nil
	})
}

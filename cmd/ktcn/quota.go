package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/quota"
)

// noQuotaSecret stands in when a command that does not draw (an auditor's
// verify with a revealed key) runs without the master secret.
type noQuotaSecret struct{ path string }

func (n noQuotaSecret) PeriodKey(string) ([]byte, error) {
	return nil, fmt.Errorf("no quota master secret at %s", n.path)
}

// loadQuotaSecret reads the hex master secret. It refuses a file others can
// read and a file inside the data dir; when create is set and the file is
// missing, it writes a new random one (0600); otherwise a missing file
// leaves the command without the secret.
func loadQuotaSecret(path, dataDir string, create bool, log zerolog.Logger) (quota.Keys, error) {
	absFile, err1 := filepath.Abs(path)
	absData, err2 := filepath.Abs(dataDir)
	if err1 == nil && err2 == nil && strings.HasPrefix(absFile, absData+string(filepath.Separator)) {
		return nil, fmt.Errorf("quota secret %s is inside the data dir: a copy of the database must not carry it", path)
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("generate quota secret: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("quota secret dir: %w", err)
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write quota secret: %w", err)
		}
		log.Warn().Str("path", path).Msg("created a new quota master secret: keep it outside backups of the data dir")
		return quota.MasterSecret(secret), nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return noQuotaSecret{path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quota secret: %w", err)
	}
	secret, err := readHexSecret(path, "quota secret", info)
	if err != nil {
		return nil, err
	}
	if len(secret) < 32 {
		return nil, fmt.Errorf("quota secret %s: want at least 32 bytes as hex", path)
	}
	return quota.MasterSecret(secret), nil
}

func runQuotaReveal(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var period string
	flags := func(fs *flag.FlagSet) { fs.StringVar(&period, "period", "", "closed period to reveal, e.g. 2025") }
	return withAppFlags(ctx, "quota reveal", args, getenv, stderr, flags, func(a *app) error {
		key, err := a.svc.RevealQuotaKey(ctx, access.SystemPrincipal(), period)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, hex.EncodeToString(key))
		return nil
	})
}

func runVerifyQuota(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		period, keyFile string
		open            bool
	)
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&period, "period", "", "period to verify, e.g. 2025")
		fs.StringVar(&keyFile, "key-file", "", "revealed period key (hex); default: the key revealed in the store")
		fs.BoolVar(&open, "open", false, "verify a period still open with the master secret (operators only)")
	}
	return withAppFlags(ctx, "verify quota", args, getenv, stderr, flags, func(a *app) error {
		if open {
			rep, err := a.svc.VerifyOpenQuota(ctx, access.SystemPrincipal(), period)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "open period %s consistent: %d scopes, %d reduced lots, %d checked, never above the cap\n",
				rep.Period, rep.Scopes, rep.Eligible, rep.Selected)
			return nil
		}
		var key []byte
		if keyFile != "" {
			raw, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("key file: %w", err)
			}
			if key, err = hex.DecodeString(strings.TrimSpace(string(raw))); err != nil {
				return fmt.Errorf("key file %s: not hex: %w", keyFile, err)
			}
		}
		rep, err := a.svc.VerifyQuota(ctx, access.SystemPrincipal(), period, key)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "period %s verified: key matches commitment %s; %d scopes, %d reduced lots, %d checked (cap %d bp), every draw recomputed\n",
			rep.Period, rep.Commitment, rep.Scopes, rep.Eligible, rep.Selected, rep.CapBasisPoints)
		return nil
	})
}

// readHexSecret reads a hex-encoded secret file that only its owner may
// read (the quota master secret, the audit signing key): a secret others
// can read is refused rather than trusted.
func readHexSecret(path, what string, info os.FileInfo) ([]byte, error) {
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable by others (mode %v): chmod 600 it", what, path, info.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%s %s: not hex", what, path)
	}
	return b, nil
}

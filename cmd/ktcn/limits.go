package main

import (
	"fmt"
	"strconv"
	"time"
)

// clientLimits are serve's limits on what clients may cost it, read from
// the configuration; zero values mean api's defaults.
type clientLimits struct {
	// authFailures failed authentications from one address within
	// authFailWindow get it 429 until the window ends.
	authFailures   int
	authFailWindow time.Duration
	// maxConns is how many connections serve holds open at once
	// (connlimit.go).
	maxConns int
}

func parseClientLimits(cfg Config) (clientLimits, error) {
	l := clientLimits{maxConns: DefaultMaxConns}
	if cfg.MaxConns != "" {
		n, err := strconv.Atoi(cfg.MaxConns)
		if err != nil || n < 1 || n > 1_000_000 {
			return l, fmt.Errorf("-max-conns %q: want a whole number from 1 to 1000000", cfg.MaxConns)
		}
		l.maxConns = n
	}
	if cfg.AuthFailLimit != "" {
		n, err := strconv.Atoi(cfg.AuthFailLimit)
		if err != nil || n <= 0 {
			return l, fmt.Errorf("-auth-fail-limit %q: want a positive whole number", cfg.AuthFailLimit)
		}
		l.authFailures = n
	}
	if cfg.AuthFailWindow != "" {
		d, err := time.ParseDuration(cfg.AuthFailWindow)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return l, fmt.Errorf("-auth-fail-window %q: want a duration from 1s to 24h, e.g. 1m", cfg.AuthFailWindow)
		}
		l.authFailWindow = d
	}
	return l, nil
}

package main

import (
	"fmt"
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
	var l clientLimits
	var err error
	if l.maxConns, err = wholeSetting("max-conns", cfg.MaxConns, DefaultMaxConns, 1, 1_000_000); err != nil {
		return l, err
	}
	if l.authFailures, err = wholeSetting("auth-fail-limit", cfg.AuthFailLimit, 0, 1, 1<<30); err != nil {
		return l, err
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

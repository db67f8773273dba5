package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/feed"
	"github.com/ktcn/ktcn/store"
)

// newFeed wires the NSW feed's use cases from the configuration.
func newFeed(cfg Config, db *store.DB, outbox *inspection.Outbox, log zerolog.Logger, obs audit.Observer) (*inspection.Feed, error) {
	fc := inspection.FeedConfig{Store: db, States: db, Outbox: outbox, Clock: calendar.SystemClock{}, Logger: log, AuditObserver: obs}
	for h := range strings.SplitSeq(cfg.WebhookAllow, ",") {
		if h = strings.TrimSpace(h); h != "" {
			fc.AllowHosts = append(fc.AllowHosts, h)
		}
	}
	switch cfg.WebhookLoopback {
	case "on":
		fc.AllowLoopback = true
	case "off":
	case "":
		// Development serves on loopback, and its receivers run there too.
		host, _, err := net.SplitHostPort(cfg.Addr)
		ip := net.ParseIP(host)
		fc.AllowLoopback = err == nil && (host == "localhost" || ip != nil && ip.IsLoopback())
	default:
		return nil, fmt.Errorf("-webhook-loopback %q: want on or off", cfg.WebhookLoopback)
	}
	var err error
	if cfg.EventRetention != "" {
		if fc.Retention, err = parseLifetime(cfg.EventRetention); err != nil {
			return nil, fmt.Errorf("-event-retention: %w", err)
		}
	}
	if cfg.SecretOverlap != "" {
		if fc.RotationOverlap, err = parseLifetime(cfg.SecretOverlap); err != nil {
			return nil, fmt.Errorf("-webhook-secret-overlap: %w", err)
		}
	}
	return inspection.NewFeed(fc)
}

// retrySchedule reads -webhook-retries: the delays before each attempt.
func retrySchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for part := range strings.SplitSeq(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("-webhook-retries %q: want delays such as 0s,5s,5m", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// webhookTimeout bounds one delivery attempt: a receiver that takes longer
// is retried like one that failed.
const webhookTimeout = 10 * time.Second

// startDelivery runs webhook delivery until the returned stop is called:
// woken by every commit with events and by subscription changes.
func (a *app) startDelivery(ctx context.Context) (stop func(), err error) {
	cfg := feed.DefaultConfig()
	if a.cfg.WebhookSchedule != "" {
		if cfg.Schedule, err = retrySchedule(a.cfg.WebhookSchedule); err != nil {
			return nil, err
		}
	}
	clock := calendar.SystemClock{}
	d := feed.NewDeliverer(a.store, a.feed, a.store, feed.NewHTTPSender(webhookTimeout, clock), clock,
		a.log.With().Str("component", "webhooks").Logger(), cfg)
	a.feed.SetDelivery(d)
	a.outbox.Listen(d.Notify)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			a.log.Error().Err(err).Msg("webhook delivery")
		}
	}, nil
}

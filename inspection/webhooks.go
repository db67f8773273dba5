package inspection

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/feed"
)

// Webhook subscriptions: admin registers a receiver and gets its signing
// secret once; rotation adds a new secret and keeps the old one signing
// for an overlap; deleting disables (the record stays, for the audit).
// Every change goes through the write path. Delivery itself is the feed
// package's; this file asks it for lag and redelivery.

// SubscriptionReader reads subscription records.
type SubscriptionReader interface {
	Subscription(id string) (feed.Subscription, error)
	Subscriptions() ([]feed.Subscription, error)
}

// SubscriptionWriter writes one.
type SubscriptionWriter interface {
	PutSubscription(feed.Subscription) error
}

// Delivery is what the feed use cases need of the running delivery:
// redelivery of a range (handed to the worker that owns the
// subscription's state) and a wake-up when subscriptions change. Nil when
// no delivery runs (commands, tests of the pull alone).
type Delivery interface {
	Redeliver(ctx context.Context, subscription string, r feed.Range) error
	Notify()
}

// Feed is the NSW feed's use cases: the pull, webhook subscriptions, and
// the outbox's compaction.
type Feed struct {
	reads    Reader
	w        writePath
	outbox   *Outbox
	delivery Delivery
	states   feed.StateStore
	clock    calendar.Clock
	log      zerolog.Logger
	cfg      FeedConfig
}

// FeedConfig wires a Feed. Store, States, Outbox and Clock are required.
type FeedConfig struct {
	Store Store
	// States is where delivery keeps each subscription's progress.
	States feed.StateStore
	Outbox *Outbox
	Clock  calendar.Clock
	Logger zerolog.Logger
	// AuditObserver hears of the audit heads the feed commits.
	AuditObserver audit.Observer
	// AllowHosts are the hosts a webhook may be sent to: an exact host, or
	// "*.example.vn" for its subdomains. AllowLoopback admits 127.0.0.1,
	// ::1 and localhost (development and tests).
	AllowHosts    []string
	AllowLoopback bool
	// RotationOverlap is how long a rotated-out secret keeps signing.
	RotationOverlap time.Duration
	// Retention is how old an event must be before compaction may remove
	// it (and only once every enabled subscription has it).
	Retention time.Duration
}

// Defaults of a FeedConfig.
const (
	DefaultRotationOverlap = 24 * time.Hour
	DefaultRetention       = 30 * 24 * time.Hour
)

// NewFeed returns the feed's use cases.
func NewFeed(c FeedConfig) (*Feed, error) {
	if c.Store == nil || c.States == nil || c.Outbox == nil || c.Clock == nil {
		return nil, errors.New("inspection: NewFeed needs a store, its delivery states, the outbox and a clock")
	}
	if c.RotationOverlap <= 0 {
		c.RotationOverlap = DefaultRotationOverlap
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	return &Feed{reads: c.Store, w: newWritePath(c.Store, c.AuditObserver, []Hook{c.Outbox}),
		outbox: c.Outbox, states: c.States, clock: c.Clock, log: c.Logger, cfg: c}, nil
}

// SetDelivery attaches the running delivery (wiring: delivery needs the
// Feed to disable subscriptions, the Feed needs delivery for status).
func (f *Feed) SetDelivery(d Delivery) { f.delivery = d }

// WebhookInput is a subscription as admin sends it.
type WebhookInput struct {
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
	Note       string   `json:"note"`
}

// Webhook is a subscription as read back: its secrets are never shown
// again, only when each was made and until when it signs.
type Webhook struct {
	ID             string          `json:"id"`
	URL            string          `json:"url"`
	EventTypes     []feed.Type     `json:"event_types"`
	Note           string          `json:"note,omitempty"`
	Status         string          `json:"status"` // "enabled" or "disabled"
	DisabledReason string          `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time      `json:"disabled_at,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	CreatedBy      string          `json:"created_by"`
	Secrets        []WebhookSecret `json:"secrets"`
	Delivery       *WebhookStatus  `json:"delivery,omitempty"`
}

// WebhookSecret describes a secret without its value.
type WebhookSecret struct {
	CreatedAt time.Time  `json:"created_at"`
	Until     *time.Time `json:"until,omitempty"`
}

// WebhookStatus is how delivery to a subscription stands.
type WebhookStatus struct {
	Cursor      uint64     `json:"cursor"`
	Delivered   int64      `json:"delivered"`
	Failures    int64      `json:"failures"`
	DeadLetters int64      `json:"dead_letters"`
	Retrying    int        `json:"retrying"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	// LagEvents is how many events it wants are not yet settled (beyond
	// the first 10,000 after the cursor, every event counts); LagSeconds
	// how old the oldest of them is.
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
}

// NewWebhook is a created or rotated subscription with the secret it
// signs with from now: shown this once.
type NewWebhook struct {
	Webhook
	Secret string `json:"secret"`
}

func webhookOf(s feed.Subscription) Webhook {
	w := Webhook{ID: s.ID, URL: s.URL, EventTypes: slices.Clone(s.Types), Note: s.Note, Status: "enabled",
		DisabledReason: s.DisabledReason, DisabledAt: s.DisabledAt, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy}
	if w.EventTypes == nil {
		w.EventTypes = []feed.Type{}
	}
	if !s.Enabled {
		w.Status = "disabled"
	}
	for _, x := range s.Secrets {
		w.Secrets = append(w.Secrets, WebhookSecret{CreatedAt: x.CreatedAt, Until: x.Until})
	}
	return w
}

// checkURL admits a receiver URL: https to an allowed host, or http(s) to
// loopback when loopback is allowed.
func (f *Feed) checkURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return "", Invalid("url", "must be an absolute http(s) URL without credentials or fragment")
	}
	host := strings.ToLower(u.Hostname())
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil {
		loopback = ip.IsLoopback()
	}
	switch {
	case loopback && f.cfg.AllowLoopback && (u.Scheme == "http" || u.Scheme == "https"):
	case loopback:
		return "", Invalid("url", "loopback receivers are allowed in development only")
	case u.Scheme != "https":
		return "", Invalid("url", "must be https, got %q", u.Scheme)
	case !f.allowed(host):
		return "", Invalid("url", "host %q is not on the webhook allowlist", host)
	}
	return u.String(), nil
}

func (f *Feed) allowed(host string) bool {
	for _, a := range f.cfg.AllowHosts {
		a = strings.ToLower(a)
		if suffix, ok := strings.CutPrefix(a, "*."); ok && strings.HasSuffix(host, "."+suffix) || host == a {
			return true
		}
	}
	return false
}

// newSecret mints a signing secret: 32 random bytes, as Standard Webhooks
// writes them.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return feed.SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

func newWebhookID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook id: %w", err)
	}
	return "wh_" + hex.EncodeToString(b), nil
}

const maxWebhookNote = 500

// CreateWebhook registers a receiver. It is sent the events committed
// after it was created; its secret is in the answer and nowhere else.
func (f *Feed) CreateWebhook(ctx context.Context, by access.Principal, in WebhookInput) (NewWebhook, error) {
	if err := by.Require(access.ActManageWebhooks); err != nil {
		return NewWebhook{}, err
	}
	u, err := f.checkURL(in.URL)
	if err != nil {
		return NewWebhook{}, err
	}
	var types []feed.Type
	for _, t := range in.EventTypes {
		if !feed.Type(t).Valid() {
			return NewWebhook{}, Invalid("event_types", "unknown event type %q; known: %s", t, typeList())
		}
		if !slices.Contains(types, feed.Type(t)) {
			types = append(types, feed.Type(t))
		}
	}
	if len(in.Note) > maxWebhookNote {
		return NewWebhook{}, Invalid("note", "is longer than %d bytes", maxWebhookNote)
	}
	secret, err := newSecret()
	if err != nil {
		return NewWebhook{}, err
	}
	id, err := newWebhookID()
	if err != nil {
		return NewWebhook{}, err
	}
	now := f.clock.Now()
	var s feed.Subscription
	err = f.w.write(ctx, by, audit.WebhookCreated, now, func(tx Tx, c *Change) error {
		h, err := tx.OutboxHead()
		if err != nil {
			return err
		}
		s = feed.Subscription{ID: id, URL: u, Types: types, Note: in.Note, Enabled: true, CreatedAt: now, CreatedBy: by.Name,
			Secrets: []feed.Secret{{Value: secret, CreatedAt: now}}, Start: h.Seq}
		c.Subjects = []string{"webhook:" + id}
		return tx.PutSubscription(s)
	})
	if err != nil {
		return NewWebhook{}, err
	}
	f.notify()
	f.log.Info().Str("webhook_id", id).Str("url", u).Str("by", by.Name).Msg("webhook subscription created")
	return NewWebhook{Webhook: webhookOf(s), Secret: secret}, nil
}

func (f *Feed) notify() {
	if f.delivery != nil {
		f.delivery.Notify()
	}
}

// Webhooks lists every subscription, with its delivery status.
func (f *Feed) Webhooks(ctx context.Context, by access.Principal) ([]Webhook, error) {
	subs, err := read(ctx, f.reads, by, access.ActManageWebhooks, func(tx ReadTx) ([]feed.Subscription, error) { return tx.Subscriptions() })
	if err != nil {
		return nil, err
	}
	out := make([]Webhook, 0, len(subs))
	for _, s := range subs {
		w, err := f.withStatus(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// Webhook returns one subscription with its delivery status.
func (f *Feed) Webhook(ctx context.Context, by access.Principal, id string) (Webhook, error) {
	s, err := read(ctx, f.reads, by, access.ActManageWebhooks, func(tx ReadTx) (feed.Subscription, error) { return tx.Subscription(id) })
	if errors.Is(err, fault.ErrNotFound) {
		return Webhook{}, NotFound("no webhook %q", id)
	}
	if err != nil {
		return Webhook{}, err
	}
	return f.withStatus(ctx, s)
}

// withStatus adds delivery's progress and lag: the events after the
// cursor that the subscription wants and has not settled.
func (f *Feed) withStatus(ctx context.Context, s feed.Subscription) (Webhook, error) {
	w := webhookOf(s)
	st, err := f.states.DeliveryState(ctx, s.ID)
	if err != nil {
		return w, err
	}
	cursor := max(st.Cursor, s.Start)
	ws := &WebhookStatus{Cursor: cursor, Delivered: st.Delivered, Failures: st.Failures, DeadLetters: st.DeadLetters,
		Retrying: len(st.Retrying), LastSuccess: st.LastSuccess, LastFailure: st.LastFailure, LastError: st.LastError}
	now := f.clock.Now()
	err = f.reads.View(ctx, func(tx ReadTx) error {
		h, err := tx.OutboxHead()
		if err != nil {
			return err
		}
		// Counted exactly over the first maxEventScan events after the
		// cursor; a lag longer than that adds the rest whatever their
		// type (a bound, so a console's list stays cheap).
		scanned, last := 0, cursor
		err = tx.OutboxEvents(cursor, func(e feed.Event) (bool, error) {
			scanned, last = scanned+1, e.Seq
			if s.Wants(e.Type) && !slices.Contains(st.Ahead, e.Seq) {
				if ws.LagEvents == 0 {
					ws.LagSeconds = max(0, now.Sub(e.OccurredAt).Seconds())
				}
				ws.LagEvents++
			}
			return scanned < maxEventScan, nil
		})
		if scanned == maxEventScan && h.Seq > last {
			ws.LagEvents += h.Seq - last
		}
		return err
	})
	w.Delivery = ws
	return w, err
}

// DeadLetterPage is a page of a subscription's dead letters.
type DeadLetterPage struct {
	DeadLetters []feed.DeadLetter `json:"dead_letters"`
	Next        uint64            `json:"next"`
}

// DeadLetters lists the events delivery gave up on for a subscription,
// by sequence after after; redeliver a range to send them again.
func (f *Feed) DeadLetters(ctx context.Context, by access.Principal, id string, after uint64, limit int) (DeadLetterPage, error) {
	if _, err := f.Webhook(ctx, by, id); err != nil {
		return DeadLetterPage{}, err
	}
	if limit <= 0 || limit > MaxEventLimit {
		return DeadLetterPage{}, Invalid("limit", "must be between 1 and %d, got %d", MaxEventLimit, limit)
	}
	dls, err := f.states.DeadLetters(ctx, id, after, limit)
	if err != nil {
		return DeadLetterPage{}, err
	}
	page := DeadLetterPage{DeadLetters: dls, Next: after}
	if page.DeadLetters == nil {
		page.DeadLetters = []feed.DeadLetter{}
	}
	if len(dls) > 0 {
		page.Next = dls[len(dls)-1].Seq
	}
	return page, nil
}

// RotateWebhookSecret adds a new secret; the previous ones keep signing
// for the configured overlap, so the receiver can switch without refusing
// a request. The new secret is in the answer and nowhere else.
func (f *Feed) RotateWebhookSecret(ctx context.Context, by access.Principal, id string) (NewWebhook, error) {
	if err := by.Require(access.ActManageWebhooks); err != nil {
		return NewWebhook{}, err
	}
	secret, err := newSecret()
	if err != nil {
		return NewWebhook{}, err
	}
	now := f.clock.Now()
	var s feed.Subscription
	err = f.w.write(ctx, by, audit.WebhookRotated, now, func(tx Tx, c *Change) (err error) {
		if s, err = f.subscription(tx, id); err != nil {
			return err
		}
		until := now.Add(f.cfg.RotationOverlap)
		var keep []feed.Secret
		for _, x := range s.Secrets {
			if x.Until == nil || now.Before(*x.Until) {
				if x.Until == nil || x.Until.After(until) {
					x.Until = &until
				}
				keep = append(keep, x)
			}
		}
		s.Secrets = append([]feed.Secret{{Value: secret, CreatedAt: now}}, keep...)
		c.Subjects = []string{"webhook:" + id}
		return tx.PutSubscription(s)
	})
	if err != nil {
		return NewWebhook{}, err
	}
	f.notify()
	f.log.Info().Str("webhook_id", id).Str("by", by.Name).Msg("webhook secret rotated")
	return NewWebhook{Webhook: webhookOf(s), Secret: secret}, nil
}

func (f *Feed) subscription(tx ReadTx, id string) (feed.Subscription, error) {
	s, err := tx.Subscription(id)
	if errors.Is(err, fault.ErrNotFound) {
		return s, NotFound("no webhook %q", id)
	}
	return s, err
}

// DeleteWebhook disables a subscription for good: delivery stops, and the
// record stays for the audit. It returns the subscription as it now is.
func (f *Feed) DeleteWebhook(ctx context.Context, by access.Principal, id string) (Webhook, error) {
	if err := by.Require(access.ActManageWebhooks); err != nil {
		return Webhook{}, err
	}
	s, err := f.disable(ctx, by, id, "deleted by "+by.Name)
	return webhookOf(s), err
}

// DisableSubscription is delivery's: the receiver answered 410 Gone.
func (f *Feed) DisableSubscription(ctx context.Context, id, reason string) error {
	_, err := f.disable(ctx, access.SystemPrincipal(), id, reason)
	return err
}

func (f *Feed) disable(ctx context.Context, by access.Principal, id, reason string) (feed.Subscription, error) {
	now := f.clock.Now()
	var s feed.Subscription
	err := f.w.write(ctx, by, audit.WebhookDisabled, now, func(tx Tx, c *Change) (err error) {
		s, err = f.subscription(tx, id)
		if err != nil || !s.Enabled {
			return err // disabling twice changes nothing
		}
		s.Enabled, s.DisabledReason, s.DisabledAt = false, reason, &now
		c.Subjects = []string{"webhook:" + id}
		return tx.PutSubscription(s)
	})
	if err == nil {
		f.notify()
		f.log.Info().Str("webhook_id", id).Str("reason", reason).Msg("webhook subscription disabled")
	}
	return s, err
}

// Subscriptions lists every subscription for delivery (secrets included:
// delivery signs with them).
func (f *Feed) Subscriptions(ctx context.Context) ([]feed.Subscription, error) {
	var out []feed.Subscription
	err := f.reads.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.Subscriptions()
		return err
	})
	return out, err
}

// Redeliver sends a subscription the events from..to again, with the
// IDs they had, whether or not it acknowledged them.
func (f *Feed) Redeliver(ctx context.Context, by access.Principal, id string, r feed.Range) error {
	if err := by.Require(access.ActManageWebhooks); err != nil {
		return err
	}
	if r.From == 0 || r.To < r.From {
		return Invalid("from", "want 1 ≤ from ≤ to, got from %d, to %d", r.From, r.To)
	}
	var h feed.Head
	err := f.reads.View(ctx, func(tx ReadTx) (err error) {
		if _, err = f.subscription(tx, id); err != nil {
			return err
		}
		h, err = tx.OutboxHead()
		return err
	})
	if err != nil {
		return err
	}
	if r.To > h.Seq {
		return Invalid("to", "is after the last event, %d", h.Seq)
	}
	if r.From <= h.Compacted {
		return Gone("from", "the events up to %d are no longer kept", h.Compacted)
	}
	f.log.Info().Str("webhook_id", id).Uint64("from", r.From).Uint64("to", r.To).Str("by", by.Name).Msg("webhook redelivery asked")
	if f.delivery != nil {
		return f.delivery.Redeliver(ctx, id, r)
	}
	// No delivery runs here (a command, a test): the range waits in the
	// saved state for the delivery that will.
	st, err := f.states.DeliveryState(ctx, id)
	if err != nil {
		return err
	}
	st.Redeliver = append(st.Redeliver, r)
	return f.states.SaveDeliveryState(ctx, id, st, nil)
}

// CompactOutbox removes events older than the retention that every
// enabled subscription has settled, a bounded number per transaction; it
// returns how many it removed.
func (f *Feed) CompactOutbox(ctx context.Context) (int, error) {
	subs, err := f.Subscriptions(ctx)
	if err != nil {
		return 0, err
	}
	var h feed.Head
	if err := f.reads.View(ctx, func(tx ReadTx) (err error) { h, err = tx.OutboxHead(); return err }); err != nil {
		return 0, err
	}
	limit := h.Seq
	for _, s := range subs {
		if !s.Enabled {
			continue
		}
		st, err := f.states.DeliveryState(ctx, s.ID)
		if err != nil {
			return 0, err
		}
		limit = min(limit, max(s.Start, st.Cursor))
	}
	cutoff := f.clock.Now().Add(-f.cfg.Retention)
	const perTx = 5000
	removed := 0
	for {
		upTo := h.Compacted
		err := f.reads.View(ctx, func(tx ReadTx) error {
			return tx.OutboxEvents(h.Compacted, func(e feed.Event) (bool, error) {
				if e.Seq > limit || !e.OccurredAt.Before(cutoff) || e.Seq-h.Compacted > perTx {
					return false, nil
				}
				upTo = e.Seq
				return true, nil
			})
		})
		if err != nil || upTo == h.Compacted {
			return removed, err
		}
		var n int
		err = f.w.write(ctx, access.SystemPrincipal(), "outbox.compacted", f.clock.Now(), func(tx Tx, _ *Change) (err error) {
			n, err = tx.CompactOutbox(upTo)
			return err
		})
		if err != nil {
			return removed, err
		}
		removed += n
		h.Compacted = upTo
	}
}

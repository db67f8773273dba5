package feed

import (
	"context"
	"time"
)

// Subscription is a receiver NSW (or another integrator) registered for
// pushed events. Its record is written through inspection's write path,
// audited like any admin change; its delivery progress (State) is not.
type Subscription struct {
	ID    string `json:"id"`
	URL   string `json:"url"`
	Types []Type `json:"event_types"` // empty: every type
	Note  string `json:"note,omitempty"`
	// Secrets sign every delivery, newest first. After a rotation the old
	// secret keeps signing beside the new one until its Until, so a
	// receiver can switch over without refusing a request.
	Secrets   []Secret  `json:"secrets"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// Disabled says why and when delivery stopped (the receiver answered
	// 410 Gone, or an admin deleted the subscription).
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	// Start is the last sequence before the subscription was created: it
	// is sent the events after it.
	Start uint64 `json:"start"`
}

// Secret is one signing secret: "whsec_" and the base64 of its bytes, as
// Standard Webhooks writes it. Until is set on a secret rotated out.
type Secret struct {
	Value     string     `json:"value"`
	CreatedAt time.Time  `json:"created_at"`
	Until     *time.Time `json:"until,omitempty"`
}

// Wants reports whether the subscription is sent events of type t.
func (s Subscription) Wants(t Type) bool {
	if len(s.Types) == 0 {
		return true
	}
	for _, w := range s.Types {
		if w == t {
			return true
		}
	}
	return false
}

// SigningSecrets are the secrets that sign a delivery at now.
func (s Subscription) SigningSecrets(now time.Time) []string {
	var out []string
	for _, x := range s.Secrets {
		if x.Until == nil || now.Before(*x.Until) {
			out = append(out, x.Value)
		}
	}
	return out
}

// State is a subscription's delivery progress, saved as delivery goes so
// it survives restarts. Every event at or below Cursor is settled:
// acknowledged, dead-lettered, or of a type the subscription does not
// want. Ahead lists the settled events after Cursor (acknowledged out of
// sequence order, which order per declaration allows), and Retrying the
// unsettled ones that failed at least once.
type State struct {
	Cursor      uint64              `json:"cursor"`
	Ahead       []uint64            `json:"ahead,omitempty"`
	Retrying    map[uint64]Attempts `json:"retrying,omitempty"`
	Redeliver   []Range             `json:"redeliver,omitempty"`
	Delivered   int64               `json:"delivered"`
	Failures    int64               `json:"failures"` // failed attempts, all time
	DeadLetters int64               `json:"dead_letters"`
	LastSuccess *time.Time          `json:"last_success,omitempty"`
	LastFailure *time.Time          `json:"last_failure,omitempty"`
	LastError   string              `json:"last_error,omitempty"`
}

// Attempts is an unsettled event's failed attempts and when it is tried
// next.
type Attempts struct {
	N         int       `json:"n"`
	NextAt    time.Time `json:"next_at"`
	LastError string    `json:"last_error,omitempty"`
}

// Range is an inclusive range of sequence numbers.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// DeadLetter is an event delivery gave up on after its retry budget: kept
// and visible until an admin redelivers it.
type DeadLetter struct {
	Subscription string    `json:"subscription_id"`
	Seq          uint64    `json:"seq"`
	EventID      string    `json:"event_id"`
	Type         Type      `json:"type"`
	Attempts     int       `json:"attempts"`
	LastError    string    `json:"last_error"`
	At           time.Time `json:"at"`
}

// Source reads the outbox: the events after a sequence, in sequence
// order, at most limit of them, and the last sequence written.
type Source interface {
	EventsAfter(ctx context.Context, after uint64, limit int) ([]Event, error)
	OutboxHead(ctx context.Context) (uint64, error)
}

// StateStore keeps delivery progress and dead letters. A save is durable
// when it returns.
type StateStore interface {
	DeliveryState(ctx context.Context, subscription string) (State, error) // zero State if none
	SaveDeliveryState(ctx context.Context, subscription string, s State, dead []DeadLetter) error
	DeadLetters(ctx context.Context, subscription string, after uint64, limit int) ([]DeadLetter, error)
}

// Subscriptions is what delivery needs of the subscription records: the
// current list, and disabling one whose receiver answered 410 Gone
// (inspection implements it through its write path, so it is audited).
type Subscriptions interface {
	Subscriptions(ctx context.Context) ([]Subscription, error)
	DisableSubscription(ctx context.Context, id, reason string) error
}

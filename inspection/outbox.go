package inspection

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/feed"
	"github.com/ktcn/ktcn/inspection/identity"
)

// The NSW outbox. A use case emits events into its Change (what happened,
// in the words NSW shows the trader); the Outbox hook numbers them and
// writes them in the change's own transaction, so an event exists exactly
// when its change does: a crash loses neither without the other, and the
// sequence is commit order with no gap (the store assigns it inside the
// commit). After the commit is durable the Outbox wakes long-polling
// readers and whoever else listens (webhook delivery).

// OutboxReader reads the outbox: where it stands, and the events after a
// sequence in order until fn says no more.
type OutboxReader interface {
	OutboxHead() (feed.Head, error)
	OutboxEvents(after uint64, fn func(feed.Event) (more bool, err error)) error
}

// OutboxWriter appends events (assigning each its sequence) and removes
// those at or below a sequence.
type OutboxWriter interface {
	AppendOutbox(events []feed.Event) error
	CompactOutbox(upTo uint64) (removed int, err error)
}

// Outbox is the write path's hook that records each change's events.
type Outbox struct {
	mu        sync.Mutex
	wake      chan struct{} // closed and replaced when events commit
	listeners []func()
}

// NewOutbox returns the outbox hook; pass it in the Hooks of every
// Service, Access and Feed over the same store.
func NewOutbox() *Outbox { return &Outbox{wake: make(chan struct{})} }

// InTx writes the change's events, numbered after the outbox head.
func (o *Outbox) InTx(tx Tx, c Change) error {
	if len(c.Events) == 0 {
		return nil
	}
	if err := tx.AppendOutbox(c.Events); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Committed wakes readers once events are durable.
func (o *Outbox) Committed(c Change) {
	if len(c.Events) == 0 {
		return
	}
	o.mu.Lock()
	close(o.wake)
	o.wake = make(chan struct{})
	ls := o.listeners
	o.mu.Unlock()
	for _, l := range ls {
		l()
	}
}

// Listen calls fn (which must not block) after every commit with events.
func (o *Outbox) Listen(fn func()) {
	o.mu.Lock()
	o.listeners = append(slices.Clip(o.listeners), fn)
	o.mu.Unlock()
}

// waiter is closed by the next commit with events.
func (o *Outbox) waiter() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.wake
}

// eventID is an event's stable ID, derived from what it is about: the
// same change never mints a second ID, whatever the retries.
func eventID(t feed.Type, cause ...string) string {
	return "evt_" + identity.HashKey("ktcn/event/v1", append([]string{string(t)}, cause...)...).String()[:26]
}

// newEvent starts an event of type t at at about a declaration's line.
func newEvent(t feed.Type, at time.Time, declarationID string, line int, p feed.Payload, cause ...string) feed.Event {
	return feed.Event{ID: eventID(t, cause...), Type: t, SchemaVersion: feed.SchemaVersion, OccurredAt: at.UTC(),
		DeclarationID: declarationID, LineNo: line, Payload: p}
}

// EventQuery is a pull of the feed: the events after a sequence, at most
// Limit of them, of the given types (none: all), waiting up to Wait for
// one to arrive.
type EventQuery struct {
	After uint64
	Limit int
	Types []feed.Type
	Wait  time.Duration
}

// EventPage is what a pull returns: the events, and the cursor to pull
// after next (past every event read, shown or filtered out).
type EventPage struct {
	Events []feed.Event `json:"events"`
	Next   uint64       `json:"next"`
}

// Pull bounds.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
	MaxEventWait      = 60 * time.Second
	// maxEventScan bounds the events one pull reads past filters, so a
	// narrow filter over a long outbox answers with a cursor, not a stall.
	maxEventScan = 10000
)

// parseEventQuery checks a pull's bounds and types.
func parseEventQuery(q EventQuery) (EventQuery, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultEventLimit
	case q.Limit < 0 || q.Limit > MaxEventLimit:
		return q, Invalid("limit", "must be between 1 and %d, got %d", MaxEventLimit, q.Limit)
	}
	if q.Wait < 0 || q.Wait > MaxEventWait {
		return q, Invalid("wait", "must be between 0s and %s, got %s", MaxEventWait, q.Wait)
	}
	for _, t := range q.Types {
		if !t.Valid() {
			return q, Invalid("types", "unknown event type %q; known: %s", t, typeList())
		}
	}
	return q, nil
}

func typeList() string {
	ts := feed.Types()
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// Events is the pull feed. nsw, customs and the auditor read every event;
// an agency reads only events about lots routed to it, filtered here so no
// caller can see more. A cursor behind the compaction horizon is Gone: the
// events after it are no longer kept, and the reader must resync.
func (f *Feed) Events(ctx context.Context, by access.Principal, q EventQuery) (EventPage, error) {
	if err := by.Require(access.ActReadEvents); err != nil {
		return EventPage{}, err
	}
	q, err := parseEventQuery(q)
	if err != nil {
		return EventPage{}, err
	}
	visible := func(e feed.Event) bool {
		if len(q.Types) > 0 && !slices.Contains(q.Types, e.Type) {
			return false
		}
		return by.Role != access.RoleAgency || e.VisibleToAgency(by.Agency)
	}
	var deadline <-chan time.Time
	if q.Wait > 0 {
		// A wall-clock wait: how long a reader is held, not domain time.
		t := time.NewTimer(q.Wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		// Take the waiter before reading: a commit between the read and
		// the wait still wakes us.
		wake := f.outbox.waiter()
		page := EventPage{Events: []feed.Event{}, Next: q.After}
		err := f.reads.View(ctx, func(tx ReadTx) error {
			page = EventPage{Events: []feed.Event{}, Next: q.After}
			h, err := tx.OutboxHead()
			if err != nil {
				return err
			}
			if q.After > h.Seq {
				// Not a cursor this feed gave (or the store was restored
				// from before it): answering nothing would skip events.
				return Invalid("after", "is past the last event, %d: pull after a cursor the feed gave", h.Seq)
			}
			if q.After < h.Compacted {
				return Gone("after", "the events after %d are no longer kept (the feed keeps those after %d): resync from the decisions, then pull after %d",
					q.After, h.Compacted, h.Seq)
			}
			scanned := 0
			return tx.OutboxEvents(q.After, func(e feed.Event) (bool, error) {
				scanned++
				page.Next = e.Seq
				if visible(e) {
					page.Events = append(page.Events, e)
				}
				return len(page.Events) < q.Limit && scanned < maxEventScan, nil
			})
		})
		if err != nil || len(page.Events) > 0 || page.Next > q.After || deadline == nil {
			return page, err
		}
		select {
		case <-wake:
		case <-deadline:
			return page, nil
		case <-ctx.Done():
			return page, nil
		}
	}
}

// The events each change emits. Payloads say what NSW shows: the lot, its
// mode, whether, how, by whom and by when it is inspected, the outcome,
// and the goods' progress toward its next mode; never the quota state.

func boolp(b bool) *bool { return &b }

func timep(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// lotPayload is what every event about a decided lot says of it.
func lotPayload(d Decision) feed.Payload {
	return feed.Payload{DecisionID: d.ID, Importer: d.ImporterTaxCode, GoodsKey: d.GoodsKey.String(),
		ProductName: d.Goods.ProductName, HSCode: d.Goods.HSCode, Mode: string(d.Mode)}
}

// assignmentPayload adds an assignment's agency, check and deadline.
func assignmentPayload(p feed.Payload, a Assignment) feed.Payload {
	p.AssignmentID, p.Agency, p.Check, p.DueAt, p.Inspected = a.ID, a.Agency, a.Check, timep(a.DueAt), boolp(a.Status == AssignmentOpen)
	return p
}

// emitDecided: the lot's decision, and its assignment if it has one.
func emitDecided(c *Change, d Decision, a *Assignment, progress string) {
	if !c.emitting {
		return
	}
	p := lotPayload(d)
	p.Inspected, p.Agency, p.AssignmentID = boolp(d.Inspect), d.Agency, d.AssignmentID
	p.Reason, p.Rule, p.Progress = d.Reason, d.Explanation.Rule, progress
	var agencies []string
	if d.Agency != "" {
		agencies = []string{d.Agency}
	}
	if a != nil {
		p.Check, p.DueAt = a.Check, timep(a.DueAt)
	}
	e := newEvent(feed.DecisionMade, c.At, d.DeclarationID, d.LineNo, p, d.ID)
	e.Agencies = agencies
	c.emit(e)
	if a != nil {
		e := newEvent(feed.AssignmentOpened, c.At, d.DeclarationID, d.LineNo, assignmentPayload(lotPayload(d), *a), a.ID, "decision")
		e.Agencies = agencies
		c.emit(e)
	}
}

// emitOverridden: an override of a lot, and the assignment it opened or
// cancelled. agencies are every agency the lot was routed to, this
// override included.
func emitOverridden(c *Change, d Decision, o Override, a Assignment, agencies []string) {
	if !c.emitting {
		return
	}
	p := lotPayload(d)
	p.OverrideID, p.ReasonCode, p.Inspected = o.ID, string(o.ReasonCode), boolp(o.Inspect)
	p.Agency, p.AssignmentID = o.Agency, o.AssignmentID
	e := newEvent(feed.DecisionOverridden, c.At, d.DeclarationID, d.LineNo, p, o.ID)
	e.Agencies = agencies
	c.emit(e)
	t := feed.AssignmentCancelled
	if o.Inspect {
		t = feed.AssignmentOpened
	}
	ap := assignmentPayload(lotPayload(d), a)
	ap.OverrideID = o.ID
	e = newEvent(t, c.At, d.DeclarationID, d.LineNo, ap, a.ID, o.ID)
	e.Agencies = agencies
	c.emit(e)
}

// assignmentOnly is what every event about an assignment says of it and
// its lot, read from the assignment alone.
func assignmentOnly(a Assignment) feed.Payload {
	return feed.Payload{DecisionID: a.DecisionID, AssignmentID: a.ID, Importer: a.ImporterTaxCode, GoodsKey: a.GoodsKey.String(),
		ProductName: a.Goods.ProductName, HSCode: a.Goods.HSCode, Mode: string(a.Mode), Agency: a.Agency, Check: a.Check}
}

// resultPayload adds an assignment's result (outcome, date, findings).
func resultPayload(a Assignment, progress string) feed.Payload {
	p := assignmentOnly(a)
	p.Outcome, p.InspectedAt, p.Progress = string(a.Result.Outcome), timep(a.Result.InspectedAt), progress
	for _, f := range a.Result.Findings {
		p.Findings = append(p.Findings, f.Code)
	}
	return p
}

// emitResult: an agency's result on a lot.
func emitResult(c *Change, a Assignment, progress string) {
	if !c.emitting || a.Result == nil {
		return
	}
	e := newEvent(feed.ResultRecorded, c.At, a.DeclarationID, a.LineNo, resultPayload(a, progress), a.ID)
	e.Agencies = []string{a.Agency}
	c.emit(e)
}

// emitAlert: a warning entered by customs. It is about a subject, not a
// lot: ordered per subject, and read by no agency.
func emitAlert(c *Change, e Event) {
	if !c.emitting {
		return
	}
	p := feed.Payload{Authority: e.Authority, Reference: e.Reference, Reason: e.Reason}
	if e.Subject.Kind == SubjectGoods {
		p.GoodsKey = e.Subject.Key.String()
	}
	if e.ImporterTaxCode != "" {
		p.Importer = e.ImporterTaxCode
	}
	ev := newEvent(feed.AlertRaised, c.At, "", 0, p, e.ID)
	ev.Subject = string(e.Subject.Kind) + ":" + e.Subject.Key.String()
	c.emit(ev)
}

// emitModeChange: the goods' mode moved (from a decision, a result or an
// alert). A goods seen for the first time has no mode to move from.
func emitModeChange(c *Change, before, after GoodsState, declarationID string, line int, agencies []string, cause string) {
	if !c.emitting || before.Key == (identity.Key{}) || before.Mode == after.Mode {
		return
	}
	p := feed.Payload{GoodsKey: after.Key.String(), ProductName: after.Goods.ProductName, HSCode: after.Goods.HSCode,
		Mode: string(after.Mode), FromMode: string(before.Mode), Rule: after.Rule, Progress: after.Progress}
	e := newEvent(feed.GoodsModeChanged, c.At, declarationID, line, p, after.Key.String(), cause)
	e.Agencies, e.Subject = agencies, string(SubjectGoods)+":"+after.Key.String()
	c.emit(e)
}

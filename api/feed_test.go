package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/feed"
)

// rawPage is a pull's answer with each event kept as sent.
type rawPage struct {
	Events []json.RawMessage `json:"events"`
	Next   uint64            `json:"next"`
}

// pullAll reads the feed from after to its end as who.
func pullAll(t *testing.T, e *env, who, query string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	after := uint64(0)
	for {
		var p rawPage
		if status, _ := e.in(t).as(who).do("GET", fmt.Sprintf("/v1/events?after=%d&limit=50%s", after, query), nil, &p); status != http.StatusOK {
			t.Fatalf("pull as %s after %d: status %d", who, after, status)
		}
		all = append(all, p.Events...)
		if p.Next == after {
			return all
		}
		after = p.Next
	}
}

func decodeEvent(t *testing.T, raw json.RawMessage) feed.Event {
	t.Helper()
	var ev feed.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// quotaWords are the quota state's field names (quota.Record, the usage):
// none may appear anywhere in an event.
var quotaWords = []string{"quota", "eligible", "selected", "allowance", "draw", "u", "probability", "chosen", "scope", "period", "cap", "threshold"}

// keysOf collects every object key in a JSON document.
func keysOf(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			into[k] = true
			keysOf(c, into)
		}
	case []any:
		for _, c := range x {
			keysOf(c, into)
		}
	}
}

// TestFeedCarriesEveryChangeAndNoQuota: a life of goods through every
// change the feed reports (decided, opened, passed into reduced, a random
// draw, failed into strict, overridden, cancelled, an alert): each change
// is an event in sequence order without gaps, no event holds a quota
// field, and an agency's feed holds exactly the events of lots routed to
// it.
func TestFeedCarriesEveryChangeAndNoQuota(t *testing.T) {
	s := &scenario{env: newEnv(t, start)}
	N, R := inspection.ModeNormal, inspection.ModeReduced
	g := milk("Feed Dairy")
	for range 3 {
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
	}
	// Reduced now: lots are drawn; check each until one is selected.
	var drawn inspection.Decision
	for range 60 {
		d := s.lot(importerA, g, R, inspection.RuleReducedPasses)
		if d.Inspect {
			drawn = d
			break
		}
	}
	if drawn.ID == "" {
		t.Fatal("no reduced lot was selected in 60")
	}
	s.clock.Advance(day)
	s.result(drawn.AssignmentID, inspection.OutcomeFail) // reduced → strict
	// The agency corrects it (a finding misread), then takes another lot
	// on, which runs past its deadline and is escalated.
	agency := "agency:" + drawn.Agency
	corr := map[string]any{"outcome": "fail", "reason": "finding code misread", "findings": []map[string]string{{"code": "LABEL", "text": "label missing"}}}
	if status, _ := s.as(agency).do("POST", "/v1/assignments/"+drawn.AssignmentID+"/corrections", corr, nil); status != http.StatusCreated {
		t.Fatalf("correction: %d", status)
	}
	late := s.decide(s.next(), importerA, milk("Feed Late Dairy"))
	if status, _ := s.as(agency).do("POST", "/v1/assignments/"+late.AssignmentID+"/accept", map[string]any{"officer": "Officer Feed"}, nil); status != http.StatusOK {
		t.Fatalf("accept: %d", status)
	}
	s.clock.Advance(30 * day)
	if n, err := s.svc.EscalateOverdue(context.Background(), access.SystemPrincipal()); err != nil || n == 0 {
		t.Fatalf("escalation: %d (%v)", n, err)
	}
	other := s.lot(importerB, kettle("Feed Kettles"), N, inspection.RuleNormalDefault)
	body := map[string]any{"reason_code": "duplicate_declaration", "reason_text": "declared twice", "inspect": false}
	if status, _ := s.as("customs").do("POST", "/v1/decisions/"+other.ID+"/override", body, nil); status != http.StatusCreated {
		t.Fatalf("override: %d", status)
	}
	alert := map[string]any{"authority": "RASFF", "reference": "FEED-1", "reason": "Salmonella", "issued_at": s.clock.Now().Format(time.RFC3339),
		"target": map[string]string{"kind": "manufacturer", "manufacturer": "Feed Dairy", "origin": "NZ"}}
	if status, _ := s.as("customs").do("POST", "/v1/alerts", alert, nil); status != http.StatusCreated {
		t.Fatalf("alert: %d", status)
	}

	// Policy staff put a copy of the rules in force.
	author, approver := access.Principal{Name: "policy-author:a", Role: access.RolePolicyAuthor}, access.Principal{Name: "policy-approver:b", Role: access.RolePolicyApprover}
	ctx := context.Background()
	if _, err := s.svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{From: "2026.1-default", Version: "feed-copy"}); err != nil {
		t.Fatal(err)
	}
	sub, err := s.svc.SubmitPolicy(ctx, author, "feed-copy")
	if err == nil {
		_, err = s.svc.ApprovePolicy(ctx, approver, "feed-copy", sub.SHA256)
	}
	if err == nil {
		_, err = s.svc.ActivatePolicy(ctx, approver, "feed-copy", nil)
	}
	if err != nil {
		t.Fatal(err)
	}

	all := pullAll(t, s.env, "nsw", "")
	seen := map[feed.Type]int{}
	for i, raw := range all {
		ev := decodeEvent(t, raw)
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the sequence has a gap or is out of order", i+1, ev.Seq)
		}
		if ev.ID == "" || ev.SchemaVersion != feed.SchemaVersion || ev.OccurredAt.IsZero() || !ev.Type.Valid() {
			t.Fatalf("event %d is incomplete: %s", ev.Seq, raw)
		}
		seen[ev.Type]++
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		keysOf(doc, keys)
		for _, w := range quotaWords {
			if keys[w] {
				t.Errorf("event %d (%s) holds quota field %q: %s", ev.Seq, ev.Type, w, raw)
			}
		}
		if strings.Contains(strings.ToLower(string(raw)), "quota") {
			t.Errorf("event %d mentions the quota: %s", ev.Seq, raw)
		}
	}
	for _, ty := range feed.Types() {
		if seen[ty] == 0 {
			t.Errorf("no %s event among %d: %v", ty, len(all), seen)
		}
	}
	// NSW shows the trader the goods' progress toward its next mode.
	progress := 0
	for _, raw := range all {
		if ev := decodeEvent(t, raw); strings.Contains(ev.Payload.Progress, "toward reduced") {
			progress++
		}
	}
	if progress == 0 {
		t.Error("no event told the goods' progress toward reduced")
	}

	// Every agency: its feed is exactly the events of lots it may read.
	for _, name := range principals() {
		agency, ok := strings.CutPrefix(name, "agency:")
		if !ok {
			continue
		}
		mine := map[uint64]bool{}
		for _, raw := range pullAll(t, s.env, name, "") {
			ev := decodeEvent(t, raw)
			mine[ev.Seq] = true
			if ev.Type == feed.AlertRaised {
				t.Errorf("%s reads alert %d", name, ev.Seq)
			}
		}
		for _, raw := range all {
			ev := decodeEvent(t, raw)
			if ev.Payload.DecisionID == "" {
				continue
			}
			status, _ := s.as(name).do("GET", "/v1/decisions/"+ev.Payload.DecisionID, nil, nil)
			routed := status == http.StatusOK
			if routed != mine[ev.Seq] {
				t.Errorf("%s: event %d (%s, agency %q) in its feed %v, but its lot routed to it %v", agency, ev.Seq, ev.Type, ev.Payload.Agency, mine[ev.Seq], routed)
			}
		}
	}
	// A filter by type.
	for _, raw := range pullAll(t, s.env, "customs", "&types=result.recorded,goods.mode_changed") {
		if ty := decodeEvent(t, raw).Type; ty != feed.ResultRecorded && ty != feed.GoodsModeChanged {
			t.Errorf("types filter let %s through", ty)
		}
	}
}

// TestFeedPullConcurrentReaders: readers long-polling with their cursors
// while declarations are decided each see the whole sequence once, in
// order, without a gap.
func TestFeedPullConcurrentReaders(t *testing.T) {
	e := newEnv(t, start)
	const writers, perWriter, readers = 4, 25, 3
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				e.in(t).decide(fmt.Sprintf("PULL-%d-%03d", w, i), importerA, milk(fmt.Sprintf("Pull Dairy %d", i%5)))
			}
		})
	}
	done := make(chan struct{})
	got := make([][]uint64, readers)
	var rg sync.WaitGroup
	for r := range readers {
		rg.Go(func() {
			after := uint64(0)
			for {
				var p api.EventPageResponse
				status, _ := e.in(t).as("nsw").do("GET", fmt.Sprintf("/v1/events?after=%d&limit=%d&wait=2s", after, 7+r), nil, &p)
				if status != http.StatusOK {
					t.Errorf("reader %d: status %d", r, status)
					return
				}
				for _, ev := range p.Events {
					got[r] = append(got[r], ev.Seq)
				}
				after = p.Next
				if len(p.Events) == 0 {
					select {
					case <-done:
						return
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	head := pullAll(t, e, "auditor", "")
	if len(head) < writers*perWriter {
		t.Fatalf("%d events for %d declarations", len(head), writers*perWriter)
	}
	for r, seqs := range got {
		if len(seqs) != len(head) {
			t.Errorf("reader %d saw %d events, the feed holds %d", r, len(seqs), len(head))
		}
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("reader %d: event %d has seq %d (a gap or a duplicate)", r, i+1, s)
			}
		}
	}
}

// TestFeedLongPollReturnsOnEvent: a pull waiting at the head returns with
// the event as soon as it is committed, long before its wait ends.
func TestFeedLongPollReturnsOnEvent(t *testing.T) {
	e := newEnv(t, start)
	e.decide("LP-0", importerA, milk("Long Poll Dairy"))
	head := uint64(len(pullAll(t, e, "nsw", "")))
	type answer struct {
		page   api.EventPageResponse
		status int
		took   time.Duration
	}
	ch := make(chan answer, 1)
	go func() {
		began := time.Now()
		var a answer
		a.status, _ = e.in(t).as("nsw").do("GET", fmt.Sprintf("/v1/events?after=%d&wait=60s", head), nil, &a.page)
		a.took = time.Since(began)
		ch <- a
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case a := <-ch:
		t.Fatalf("the pull answered before any event: %+v", a)
	default:
	}
	e.decide("LP-1", importerA, milk("Long Poll Dairy"))
	a := <-ch
	if a.status != http.StatusOK || len(a.page.Events) == 0 || a.page.Events[0].Seq != head+1 {
		t.Fatalf("status %d, %+v: want the new event after %d", a.status, a.page, head)
	}
	// The wait was 60 s; an answer in half of it came from the event.
	if a.took > 30*time.Second {
		t.Fatalf("the pull took %s: it waited out its wait", a.took)
	}
}

// TestFeedRefusesBadPulls: bad parameters are 422 naming the field; a
// cursor behind the compaction horizon is 410 saying to resync.
func TestFeedRefusesBadPulls(t *testing.T) {
	e := newEnv(t, start)
	e.decide("BAD-PULL-1", importerA, milk("Bad Pull Dairy"))
	for _, tc := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=5000", "limit"},
		{"after=-1", "after"},
		{"after=x", "after"},
		{"types=decision.made,nope", "types"},
		{"wait=2h", "wait"},
		{"wait=soon", "wait"},
		{"after=1&after=2", "after"},
		{"after=1000000", "after"},
	} {
		var p api.Problem
		status, hdr := e.as("nsw").do("GET", "/v1/events?"+tc.query, nil, &p)
		if status != http.StatusUnprocessableEntity || p.Field != tc.field || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: status %d %+v, want 422 naming %s", tc.query, status, p, tc.field)
		}
	}
	var unknown api.Problem
	if status, _ := e.as("nsw").do("GET", "/v1/events?since=3", nil, &unknown); status != http.StatusBadRequest || unknown.Field != "since" {
		t.Errorf("an unknown parameter: %d %+v, want 400 naming since", status, unknown)
	}
	// Compaction: nothing is removed while younger than the retention.
	n, err := e.feed.CompactOutbox(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("compacted %d young events (%v)", n, err)
	}
	e.clock.Advance(inspection.DefaultRetention + day)
	if n, err = e.feed.CompactOutbox(context.Background()); err != nil || n == 0 {
		t.Fatalf("compacted %d old events (%v)", n, err)
	}
	var p api.Problem
	if status, _ := e.as("nsw").do("GET", "/v1/events?after=0", nil, &p); status != http.StatusGone || p.Field != "after" || !strings.Contains(p.Detail, "resync") {
		t.Fatalf("a cursor behind the horizon: %d %+v, want 410 naming after", status, p)
	}
	var page api.EventPageResponse
	if status, _ := e.as("nsw").do("GET", fmt.Sprintf("/v1/events?after=%d", n), nil, &page); status != http.StatusOK || len(page.Events) != 0 {
		t.Fatalf("a cursor at the horizon: %d %+v", status, page)
	}
}

// TestOutboxKeptUntilEveryWebhookHasIt: events older than the retention
// stay while an enabled subscription has not settled them, and go once it
// is deleted; its dead letters are listed, none here.
func TestOutboxKeptUntilEveryWebhookHasIt(t *testing.T) {
	e := newEnv(t, start)
	var w inspection.NewWebhook
	if status, _ := e.as("admin").do("POST", "/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9/nsw"}, &w); status != http.StatusCreated || !strings.HasPrefix(w.Secret, "whsec_") {
		t.Fatalf("create: %d %+v", status, w)
	}
	e.decide("KEEP-1", importerA, milk("Keep Dairy"))
	e.clock.Advance(inspection.DefaultRetention + day)
	if n, err := e.feed.CompactOutbox(context.Background()); err != nil || n != 0 {
		t.Fatalf("compacted %d events the webhook has not had (%v)", n, err)
	}
	var got inspection.Webhook
	if status, _ := e.as("admin").do("GET", "/v1/webhooks/"+w.ID, nil, &got); status != http.StatusOK || got.Delivery == nil || got.Delivery.LagEvents == 0 {
		t.Fatalf("status %d %+v: want the undelivered events as lag", status, got.Delivery)
	}
	var dl inspection.DeadLetterPage
	if status, _ := e.as("admin").do("GET", "/v1/webhooks/"+w.ID+"/dead-letters", nil, &dl); status != http.StatusOK || len(dl.DeadLetters) != 0 {
		t.Fatalf("dead letters: %d %+v", status, dl)
	}
	if status, _ := e.as("admin").do("DELETE", "/v1/webhooks/"+w.ID, nil, &got); status != http.StatusOK || got.Status != "disabled" {
		t.Fatalf("delete: %d %+v", status, got)
	}
	if n, err := e.feed.CompactOutbox(context.Background()); err != nil || n == 0 {
		t.Fatalf("compacted %d once no webhook waits (%v)", n, err)
	}
	// Bad input changes nothing.
	before := digest(t, e)
	for _, tc := range []struct {
		body   map[string]any
		status int
		field  string
	}{
		{map[string]any{"url": "ftp://example.vn/x"}, 422, "url"},
		{map[string]any{"url": "https://evil.example.com/x"}, 422, "url"},
		{map[string]any{"url": "http://127.0.0.1:9/x", "event_types": []string{"decision.maed"}}, 422, "event_types"},
		{map[string]any{"url": "http://127.0.0.1:9/x", "note": strings.Repeat("n", 501)}, 422, "note"},
		// ktcn mints every secret: one sent is not a field at all.
		{map[string]any{"url": "http://127.0.0.1:9/x", "secret": "mine"}, 400, "secret"},
	} {
		var p api.Problem
		if status, _ := e.as("admin").do("POST", "/v1/webhooks", tc.body, &p); status != tc.status || p.Field != tc.field {
			t.Errorf("%v: %d %+v, want %d naming %s", tc.body, status, p, tc.status, tc.field)
		}
	}
	var p api.Problem
	if status, _ := e.as("admin").do("POST", "/v1/webhooks/"+w.ID+"/redeliver", map[string]any{"from": 5, "to": 2}, &p); status != http.StatusUnprocessableEntity || p.Field != "from" {
		t.Errorf("redeliver 5..2: %d %+v", status, p)
	}
	if status, _ := e.as("admin").do("GET", "/v1/webhooks/wh_nope", nil, &p); status != http.StatusNotFound {
		t.Errorf("unknown webhook: %d", status)
	}
	if digest(t, e) != before {
		t.Fatal("refused requests changed the store")
	}
}

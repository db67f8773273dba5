package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/quota"
)

// matrixRow is one route of the authorization matrix: who may call it, and
// a request that succeeds (2xx) for someone allowed.
type matrixRow struct {
	allowed []string // principal names; "*" is public
	request func(t *testing.T, m *matrixFixture, who string) (path string, body any)
}

// matrixAfter runs, for the routes that leave work running, after an
// allowed request with its answer: that work must end before the next
// role's refusal is checked for changing nothing.
var matrixAfter = map[string]func(t *testing.T, m *matrixFixture, answer json.RawMessage){
	"POST /v1/policies/:version/backtests": func(t *testing.T, m *matrixFixture, answer json.RawMessage) {
		var j backtest.Job
		if err := json.Unmarshal(answer, &j); err != nil || j.ID == "" {
			t.Fatalf("backtest answer %s: %v", answer, err)
		}
		m.backtestEnded(t, j.ID)
	},
}

// matrixFixture is state the rows' requests need: a decided lot routed to
// one agency (the matrix's agency principal).
type matrixFixture struct {
	*env
	agency   string // principal name of the lot's agency
	decision inspection.Decision
	seq      int
}

// backtestDone runs a backtest of the version in force to its end, as
// the system, and returns its ID.
func (m *matrixFixture) backtestDone(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := m.backtests.Start(context.Background(), access.SystemPrincipal(), "2026.1-default", backtest.Request{})
		if err == nil {
			m.backtestEnded(t, j.ID)
			return j.ID
		}
		if fault.CodeOf(err) != fault.Conflict || time.Now().After(deadline) {
			t.Fatalf("setup: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // others still running
	}
}

// backtestEnded waits until a job is done. Get says done only once the
// job has left memory, after its last write (its end and the prune of
// older jobs), so the store holds still after it.
func (m *matrixFixture) backtestEnded(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := m.backtests.Get(context.Background(), access.SystemPrincipal(), id)
		if err != nil {
			t.Fatalf("setup: %v", err)
		}
		if j.State != backtest.JobRunning || time.Now().After(deadline) {
			if j.State != backtest.JobDone {
				t.Fatalf("setup: backtest %s %s: %s", j.ID, j.State, j.Error)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (m *matrixFixture) next() string { m.seq++; return fmt.Sprintf("MATRIX%06d", m.seq) }

// fresh decides a lot of new goods (another maker's) and returns its decision.
func (m *matrixFixture) fresh(t *testing.T, product string) inspection.Decision {
	t.Helper()
	no, q := 1, 10.0
	res, err := m.svc.Decide(context.Background(), access.Principal{Name: "nsw", Role: access.RoleNSW},
		declaration.Input{DeclarationID: m.next(), ImporterTaxCode: importerA,
			Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: product + " " + m.next(), Manufacturer: "Matrix Other Maker",
				Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}}})
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	return res.Decisions[0]
}

// pendingOverride decides a fresh lot and has another customs officer
// than the matrix's ask to release it for an exemption, which waits for a
// second officer; it returns the override's path under its decision.
func (m *matrixFixture) pendingOverride(t *testing.T) string {
	t.Helper()
	d := m.fresh(t, "Matrix Exempt Milk")
	out, err := m.svc.Override(context.Background(), access.Principal{Name: "customs:matrix-author", Role: access.RoleCustoms}, d.ID,
		inspection.OverrideInput{ReasonCode: "exemption_established", ReasonText: "diplomatic consignment", Inspect: new(bool)})
	if err != nil || out.Decision.Overrides[0].Status != inspection.OverridePending {
		t.Fatalf("setup: %v %+v", err, out.Decision.Overrides)
	}
	return "/v1/decisions/" + d.ID + "/overrides/1"
}

// webhook registers a receiver (on a port nothing listens on) and returns
// its ID.
func (m *matrixFixture) webhook(t *testing.T) string {
	t.Helper()
	w, err := m.feed.CreateWebhook(context.Background(), access.Principal{Name: "admin:test", Role: access.RoleAdmin},
		inspection.WebhookInput{URL: "http://127.0.0.1:9/nsw"})
	if err != nil {
		t.Fatal(err)
	}
	return w.ID
}

// policyAt takes a fresh copy of the default policy to state ("draft",
// "submitted" or "approved") through the lifecycle, as an author other
// than the matrix's and approved by an approver other than the matrix's,
// and returns its version and document hash.
func (m *matrixFixture) policyAt(t *testing.T, state inspection.PolicyState) (string, string) {
	t.Helper()
	ctx := context.Background()
	author := access.Principal{Name: "policy-author:fixture", Role: access.RolePolicyAuthor}
	v, err := m.svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{From: "2026.1-default"})
	if err != nil {
		t.Fatal(err)
	}
	if state == inspection.PolicyDraft {
		return v.Version, v.SHA256
	}
	if v, err = m.svc.SubmitPolicy(ctx, author, v.Version); err != nil {
		t.Fatal(err)
	}
	if state == inspection.PolicySubmitted {
		return v.Version, v.SHA256
	}
	if v, err = m.svc.ApprovePolicy(ctx, access.Principal{Name: "policy-approver:other", Role: access.RolePolicyApprover}, v.Version, v.SHA256); err != nil {
		t.Fatal(err)
	}
	return v.Version, v.SHA256
}

// accepted decides a fresh lot (strict when strict: its maker has an
// alert) and has its agency accept it; it returns the assignment ID.
func (m *matrixFixture) accepted(t *testing.T, strict bool) string {
	t.Helper()
	ctx := context.Background()
	maker := "Matrix Other Maker"
	if strict {
		maker = "Matrix Strict Maker"
		if _, err := m.svc.RaiseAlert(ctx, access.Principal{Name: "customs", Role: access.RoleCustoms}, inspection.AlertInput{Authority: "RASFF",
			Reference: m.next(), Reason: "Salmonella", IssuedAt: m.clock.Now().Add(-time.Hour).Format(time.RFC3339),
			Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: maker, Origin: "NZ"}}); err != nil {
			t.Fatal(err)
		}
	}
	no, q := 1, 10.0
	res, err := m.svc.Decide(ctx, access.Principal{Name: "nsw", Role: access.RoleNSW},
		declaration.Input{DeclarationID: m.next(), ImporterTaxCode: importerA,
			Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: "Sữa " + m.next(), Manufacturer: maker,
				Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}}})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Decisions[0]
	agency := access.Principal{Name: "agency:" + d.Agency, Role: access.RoleAgency, Agency: d.Agency}
	if _, _, err := m.svc.AcceptAssignment(ctx, agency, d.AssignmentID, "Officer Matrix"); err != nil {
		t.Fatal(err)
	}
	return d.AssignmentID
}

// matrix is written out independently of api's route table: the test is
// the second statement of who may do what, and TestAuthorizationMatrix
// fails for any route the router has that is not a row here.
var matrix = map[string]matrixRow{
	"GET /healthz": {[]string{"*"}, func(*testing.T, *matrixFixture, string) (string, any) { return "/healthz", nil }},
	"GET /v1/openapi.json": {[]string{"*"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/openapi.json", nil
	}},
	"GET /v1/reference": {[]string{"*"}, func(*testing.T, *matrixFixture, string) (string, any) { return "/v1/reference", nil }},
	"GET /readyz":       {[]string{"*"}, func(*testing.T, *matrixFixture, string) (string, any) { return "/readyz", nil }},
	// Sent from another machine (elsewhere): from the loopback it is open
	// to every caller, keyed or not (checked below and in TestMetricsAccess).
	"GET /metrics": {[]string{"admin", "auditor", "metrics"}, func(*testing.T, *matrixFixture, string) (string, any) { return "/metrics", nil }},
	"POST /v1/declarations": {[]string{"nsw", "customs"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		l := milk("Matrix Dairy")
		l.LineNo = 1
		return "/v1/declarations", declarationBody{m.next(), importerA, []line{l}}
	}},
	"GET /v1/decisions": {[]string{"agency", "customs", "auditor"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/decisions?importer=" + m.decision.ImporterTaxCode + "&limit=5", nil
	}},
	"GET /v1/decisions/:id": {[]string{"agency", "customs", "auditor"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/decisions/" + m.decision.ID, nil
	}},
	"POST /v1/decisions/:id/override": {[]string{"customs"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		// A fresh inspected lot each time, so the allowed call has
		// something to override.
		no, q := 1, 10.0
		res, err := m.svc.Decide(context.Background(), access.Principal{Name: "nsw", Role: access.RoleNSW},
			declaration.Input{DeclarationID: m.next(), ImporterTaxCode: importerA,
				Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: "Matrix milk", Manufacturer: "Matrix Dairy",
					Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}}})
		if err != nil || !res.Decisions[0].Inspect {
			t.Fatalf("setup: %v %+v", err, res)
		}
		return "/v1/decisions/" + res.Decisions[0].ID + "/override",
			map[string]any{"reason_code": "duplicate_declaration", "reason_text": "declared twice", "inspect": false}
	}},
	"POST /v1/decisions/:id/overrides/:n/confirm": {[]string{"customs"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return m.pendingOverride(t) + "/confirm", nil
	}},
	"POST /v1/decisions/:id/overrides/:n/reject": {[]string{"customs"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return m.pendingOverride(t) + "/reject", map[string]any{"reason": "no diplomatic note on file"}
	}},
	"POST /v1/manufacturers/:key/certificates": {[]string{"agency", "customs"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/manufacturers/" + identity.ManufacturerKey("Matrix Registry", "NZ").String() + "/certificates",
			map[string]string{"kind": "HACCP", "number": "M-1", "valid_until": "2028-06-30", "manufacturer": "Matrix Registry", "origin": "NZ"}
	}},
	"POST /v1/goods/:key/link": {[]string{"customs"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		other := m.fresh(t, "Matrix Link Powder")
		return "/v1/goods/" + other.GoodsKey.String() + "/link", map[string]string{"to": m.decision.GoodsKey.String(), "reason": "one product"}
	}},
	"POST /v1/goods/:key/unlink": {[]string{"customs"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		other := m.fresh(t, "Matrix Unlink Powder")
		if _, err := m.svc.LinkGoods(context.Background(), access.Principal{Name: "customs", Role: access.RoleCustoms}, other.GoodsKey, m.decision.GoodsKey, "setup"); err != nil {
			t.Fatalf("setup: %v", err)
		}
		return "/v1/goods/" + other.GoodsKey.String() + "/unlink", map[string]string{"reason": "two products"}
	}},
	"GET /v1/audit": {[]string{"auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/audit?limit=5", nil
	}},
	"GET /v1/assignments": {[]string{"agency", "customs", "auditor"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/assignments?agency=" + m.decision.Agency, nil
	}},
	"GET /v1/assignments/:id": {[]string{"agency", "customs", "auditor"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/assignments/" + m.decision.AssignmentID, nil
	}},
	"POST /v1/assignments/:id/result": {[]string{"agency"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/assignments/" + m.decision.AssignmentID + "/result",
			map[string]any{"outcome": "pass", "inspected_at": m.clock.Now().Format(time.RFC3339)}
	}},
	"POST /v1/alerts": {[]string{"customs"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/alerts", map[string]any{"authority": "RASFF", "reference": m.next(), "reason": "Salmonella",
			"issued_at": m.clock.Now().Format(time.RFC3339),
			"target":    map[string]string{"kind": "manufacturer", "manufacturer": "Other Dairy", "origin": "NZ"}}
	}},
	"GET /v1/goods/:key": {[]string{"customs", "auditor"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/goods/" + m.decision.GoodsKey.String(), nil
	}},
	"GET /v1/policy": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policy", nil
	}},
	"GET /v1/scores": {[]string{"customs", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/scores?kind=goods", nil
	}},
	"GET /v1/scores/:subject": {[]string{"customs", "auditor"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/scores/importer:" + m.decision.ImporterTaxCode, nil
	}},
	"GET /v1/quota/periods": {[]string{"customs", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/quota/periods", nil
	}},
	"GET /v1/quota/periods/:period/scopes": {[]string{"customs", "auditor"}, func(_ *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/quota/periods/" + quota.PeriodOf(m.decision.DecidedAt) + "/scopes", nil
	}},
	"POST /v1/admin/keys": {[]string{"admin"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/admin/keys", map[string]any{"principal": "auditor:matrix"}
	}},
	"GET /v1/admin/keys": {[]string{"admin", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/admin/keys", nil
	}},
	"POST /v1/admin/backups": {[]string{"admin"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/admin/backups", nil
	}},
	"GET /v1/admin/backup": {[]string{"admin"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/admin/backup", nil
	}},
	"GET /v1/workload": {[]string{"agency", "customs", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/workload?date=2026-01-05", nil
	}},
	"POST /v1/assignments/:id/accept": {[]string{"agency"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/assignments/" + m.fresh(t, "Matrix Accept").AssignmentID + "/accept", map[string]any{"officer": "Officer Nguyen"}
	}},
	"POST /v1/assignments/:id/sample": {[]string{"agency"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/assignments/" + m.accepted(t, true) + "/sample", map[string]any{"laboratory": "Lab 1", "reference": "S-" + m.next()}
	}},
	"POST /v1/assignments/:id/corrections": {[]string{"agency"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		id := m.accepted(t, false)
		a, err := m.svc.Assignment(context.Background(), access.SystemPrincipal(), id)
		if err == nil {
			_, err = m.svc.RecordResult(context.Background(), access.Principal{Name: "agency:" + a.Agency, Role: access.RoleAgency, Agency: a.Agency}, id,
				inspection.ResultInput{Outcome: "pass", InspectedAt: m.clock.Now().Format(time.RFC3339)})
		}
		if err != nil {
			t.Fatal(err)
		}
		return "/v1/assignments/" + id + "/corrections", map[string]any{"outcome": "fail", "reason": "lab report misread",
			"findings": []map[string]string{{"code": "MICRO", "text": "above limit"}}}
	}},
	"GET /v1/policies": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policies", nil
	}},
	"POST /v1/policies": {[]string{"policy-author"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policies", map[string]any{"from": "2026.1-default"}
	}},
	"GET /v1/policies/:version": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policies/2026.1-default", nil
	}},
	"PUT /v1/policies/:version": {[]string{"policy-author"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, _ := m.policyAt(t, inspection.PolicyDraft)
		return "/v1/policies/" + v, map[string]any{"version": v, "description": "edited in the matrix"}
	}},
	"POST /v1/policies/:version/validate": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policies/2026.1-default/validate", nil
	}},
	"POST /v1/policies/:version/submit": {[]string{"policy-author"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, _ := m.policyAt(t, inspection.PolicyDraft)
		return "/v1/policies/" + v + "/submit", nil
	}},
	"POST /v1/policies/:version/approve": {[]string{"policy-approver"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, sha := m.policyAt(t, inspection.PolicySubmitted)
		return "/v1/policies/" + v + "/approve", map[string]any{"sha256": sha}
	}},
	"POST /v1/policies/:version/reject": {[]string{"policy-approver"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, _ := m.policyAt(t, inspection.PolicySubmitted)
		return "/v1/policies/" + v + "/reject", map[string]any{"reason": "not now"}
	}},
	"POST /v1/policies/:version/activate": {[]string{"policy-approver"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, _ := m.policyAt(t, inspection.PolicyApproved)
		return "/v1/policies/" + v + "/activate", map[string]any{}
	}},
	"POST /v1/policies/:version/backtests": {[]string{"policy-author", "policy-approver"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policies/2026.1-default/backtests", map[string]any{}
	}},
	"GET /v1/backtests/:id": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/backtests/" + m.backtestDone(t), nil
	}},
	"GET /v1/backtests/:id/changes": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/backtests/" + m.backtestDone(t) + "/changes", nil
	}},
	"DELETE /v1/backtests/:id": {[]string{"policy-author", "policy-approver"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/backtests/" + m.backtestDone(t), nil
	}},
	"POST /v1/policies/:version/retire": {[]string{"policy-approver"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, _ := m.policyAt(t, inspection.PolicyDraft)
		return "/v1/policies/" + v + "/retire", map[string]any{"reason": "abandoned"}
	}},
	"GET /v1/policies/:version/diff": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, _ := m.policyAt(t, inspection.PolicyDraft)
		return "/v1/policies/2026.1-default/diff?to=" + v, nil
	}},
	"POST /v1/policies/:version/shadow": {[]string{"policy-approver"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		v, _ := m.policyAt(t, inspection.PolicyApproved)
		return "/v1/policies/" + v + "/shadow", map[string]any{"enabled": true}
	}},
	"GET /v1/policies/:version/shadow": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policies/2026.1-default/shadow", nil
	}},
	"GET /v1/policies/:version/effectiveness": {[]string{"customs", "policy-author", "policy-approver", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/policies/2026.1-default/effectiveness", nil
	}},
	"GET /v1/events": {[]string{"nsw", "customs", "auditor", "agency"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/events?after=0&limit=5", nil
	}},
	"POST /v1/webhooks": {[]string{"admin"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9/nsw", "event_types": []string{"decision.made"}}
	}},
	"GET /v1/webhooks": {[]string{"admin"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/webhooks", nil
	}},
	"GET /v1/webhooks/:id": {[]string{"admin"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/webhooks/" + m.webhook(t), nil
	}},
	"POST /v1/webhooks/:id/rotate-secret": {[]string{"admin"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/webhooks/" + m.webhook(t) + "/rotate-secret", nil
	}},
	"POST /v1/webhooks/:id/redeliver": {[]string{"admin"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/webhooks/" + m.webhook(t) + "/redeliver", map[string]any{"from": 1, "to": 1}
	}},
	"GET /v1/webhooks/:id/dead-letters": {[]string{"admin"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/webhooks/" + m.webhook(t) + "/dead-letters?limit=10", nil
	}},
	"DELETE /v1/webhooks/:id": {[]string{"admin"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		return "/v1/webhooks/" + m.webhook(t), nil
	}},
	"GET /v1/jobs": {[]string{"admin", "auditor"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/jobs", nil
	}},
	"POST /v1/jobs/:name/run": {[]string{"admin"}, func(*testing.T, *matrixFixture, string) (string, any) {
		return "/v1/jobs/noop/run", nil
	}},
	"DELETE /v1/admin/keys/:id": {[]string{"admin"}, func(t *testing.T, m *matrixFixture, _ string) (string, any) {
		k, err := m.access.CreateKey(context.Background(), access.Principal{Name: "admin:test", Role: access.RoleAdmin},
			inspection.KeyRequest{Principal: "auditor:doomed"})
		if err != nil {
			t.Fatal(err)
		}
		return "/v1/admin/keys/" + k.Key.ID, nil
	}},
}

// TestAuthorizationMatrix sends, for every route echo has registered, one
// request as every role and one without a key: an allowed role gets 2xx, a
// role not allowed gets 403 problem+json and changes nothing, no key gets
// 401 (public routes aside).
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t, start)
	ld := e.decide("MATRIX-SETUP", importerA, milk("Matrix Dairy"))
	m := &matrixFixture{env: e, agency: "agency:" + ld.Agency, decision: e.decision(ld.DecisionID)}

	// One principal per role; the agency is the one the lot is routed to.
	who := map[access.Role]string{}
	for _, r := range access.Roles() {
		who[r] = string(r)
	}
	who[access.RoleAgency] = m.agency

	registered := map[string]bool{}
	for _, r := range e.echo.Routes() {
		key := r.Method + " " + r.Path
		registered[key] = true
		row, ok := matrix[key]
		if !ok {
			t.Errorf("route %s is registered but has no row in this matrix: add one here and a rule in api/auth.go", key)
			continue
		}
		t.Run(key, func(t *testing.T) {
			public := slices.Contains(row.allowed, "*")
			for _, role := range access.Roles() {
				name := who[role]
				allowed := public || slices.Contains(row.allowed, string(role))
				path, body := row.request(t, m, name)
				before := digest(t, e)
				var raw json.RawMessage
				var out any = &raw
				if key == "GET /v1/reference" || key == "GET /metrics" {
					out = (*[]byte)(&raw) // HTML; Prometheus' text format (a refusal is still problem+json)
				}
				status, hdr := e.in(t).from(peerOf(key)).as(name).do(methodOf(key), path, body, out)
				var p api.Problem
				if status >= 400 {
					_ = json.Unmarshal(raw, &p)
				}
				switch {
				case allowed && (status < 200 || status > 299):
					t.Errorf("%s: status %d, want 2xx (%+v)", role, status, p)
				case allowed && matrixAfter[key] != nil:
					matrixAfter[key](t, m, raw)
				case !allowed && status != http.StatusForbidden:
					t.Errorf("%s: status %d, want 403", role, status)
				case !allowed && (hdr.Get("Content-Type") != "application/problem+json" || p.Code != "forbidden"):
					t.Errorf("%s: 403 is not problem+json with code forbidden: %q %+v", role, hdr.Get("Content-Type"), p)
				case !allowed && digest(t, e) != before:
					t.Errorf("%s: a refused request changed the store", role)
				}
			}
			path, body := row.request(t, m, anonymous)
			status, hdr := e.in(t).from(peerOf(key)).as(anonymous).do(methodOf(key), path, body, nil)
			if public && status != http.StatusOK {
				t.Errorf("no key on a public route: status %d", status)
			}
			if !public && (status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer")) {
				t.Errorf("no key: status %d, WWW-Authenticate %q; want 401 with a Bearer challenge", status, hdr.Get("WWW-Authenticate"))
			}
			if peerOf(key) != "" {
				if status, _ := e.in(t).as(anonymous).do(methodOf(key), path, body, nil); status != http.StatusOK {
					t.Errorf("no key from the loopback: status %d, want 200", status)
				}
			}
		})
	}
	for key := range matrix {
		if !registered[key] {
			t.Errorf("matrix row %s names no registered route", key)
		}
	}
}

// elsewhere is a peer that is not on this machine (TEST-NET-3).
const elsewhere = "203.0.113.7"

// peerOf is where the matrix sends a route's requests from: elsewhere for
// the routes a loopback peer may call without a key, so the matrix sees
// their keyed rule; the loopback ("") for the rest.
func peerOf(routeKey string) string {
	if routeKey == "GET /metrics" {
		return elsewhere
	}
	return ""
}

func methodOf(routeKey string) string { m, _, _ := strings.Cut(routeKey, " "); return m }

// TestRouteWithoutRuleIsRefused: a route registered without a row in the
// authorization table is closed to every role, admin included.
func TestRouteWithoutRuleIsRefused(t *testing.T) {
	reached := false
	e := newEnvWith(t, start, envOptions{routes: func(ec *echo.Echo) {
		ec.GET("/v1/unruled", func(c echo.Context) error { reached = true; return c.NoContent(http.StatusOK) })
	}})
	for _, name := range []string{"admin", "customs", "auditor", "nsw"} {
		var p api.Problem
		if status, _ := e.as(name).do("GET", "/v1/unruled", nil, &p); status != http.StatusForbidden || p.Code != "forbidden" {
			t.Errorf("%s: status %d %+v, want 403", name, status, p)
		}
	}
	if status, _ := e.as(anonymous).do("GET", "/v1/unruled", nil, nil); status != http.StatusUnauthorized {
		t.Errorf("anonymous: status %d, want 401", status)
	}
	if reached {
		t.Fatal("the handler ran")
	}
	// Paths no route serves: 401 without a key (nothing to learn about
	// the routes), 404 or 405 with one.
	for _, tc := range []struct {
		who, method, path string
		status            int
	}{
		{anonymous, "GET", "/v1/nowhere", 401},
		{anonymous, "GET", "/", 401},
		{"customs", "GET", "/v1/nowhere", 404},
		{"customs", "DELETE", "/v1/declarations", 405},
	} {
		var p api.Problem
		if status, hdr := e.as(tc.who).do(tc.method, tc.path, nil, &p); status != tc.status || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s as %s: status %d (%s), want %d", tc.method, tc.path, tc.who, status, hdr.Get("Content-Type"), tc.status)
		}
	}
}

// TestAgencyIsolation: an agency sees and touches only the assignments and
// decisions routed to it; another agency's are answered exactly as ones
// that do not exist.
func TestAgencyIsolation(t *testing.T) {
	e := newEnv(t, start)
	ld := e.decide("ISO-1", importerA, milk("Isolation Dairy"))
	owner := "agency:" + ld.Agency
	var other string
	for _, name := range principals() {
		if strings.HasPrefix(name, "agency:") && name != owner {
			other = name
			break
		}
	}
	notInspected := e.decide("ISO-2", importerA, func() line { l := milk("Isolation Dairy"); l.Exemption = "personal_luggage"; return l }())
	if notInspected.Inspect || notInspected.Agency != "" {
		t.Fatalf("setup: exempt lot inspected: %+v", notInspected)
	}

	// raw sends and returns the status and the problem body with the ID
	// asked for and the request's own ID (different on every request,
	// whatever it asks for) blanked, so two answers can be compared byte
	// for byte.
	raw := func(who, method, path, id string, body any) (int, string) {
		t.Helper()
		var m json.RawMessage
		status, hdr := e.as(who).do(method, path, body, &m)
		if status >= 400 && hdr.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s: %q", method, path, hdr.Get("Content-Type"))
		}
		out := strings.ReplaceAll(string(m), hdr.Get("X-Request-Id"), "REQUEST")
		return status, strings.ReplaceAll(out, id, "ID")
	}
	result := map[string]any{"outcome": "pass", "inspected_at": start.Format(time.RFC3339)}
	// Each row: a request for the owner's record, and the same request
	// for a record that does not exist.
	hidden := []struct {
		name, method, path, id, missingPath, missingID string
		body                                           any
	}{
		{"decision", "GET", "/v1/decisions/" + ld.DecisionID, ld.DecisionID, "/v1/decisions/dec_0", "dec_0", nil},
		{"assignment", "GET", "/v1/assignments/" + ld.AssignmentID, ld.AssignmentID, "/v1/assignments/asg_0", "asg_0", nil},
		{"result", "POST", "/v1/assignments/" + ld.AssignmentID + "/result", ld.AssignmentID, "/v1/assignments/asg_0/result", "asg_0", result},
		{"list", "GET", "/v1/assignments?agency=" + ld.Agency, ld.Agency, "/v1/assignments?agency=no-such-agency", "no-such-agency", nil},
		{"not inspected decision", "GET", "/v1/decisions/" + notInspected.DecisionID, notInspected.DecisionID, "/v1/decisions/dec_0", "dec_0", nil},
	}
	before := digest(t, e)
	for _, tc := range hidden {
		t.Run("other agency: "+tc.name, func(t *testing.T) {
			status, body := raw(other, tc.method, tc.path, tc.id, tc.body)
			mStatus, mBody := raw(other, tc.method, tc.missingPath, tc.missingID, tc.body)
			if status != http.StatusNotFound || mStatus != http.StatusNotFound {
				t.Fatalf("status %d (missing: %d), want 404 for both", status, mStatus)
			}
			if body != mBody {
				t.Fatalf("another agency's record is told apart from a missing one:\n%s\n%s", body, mBody)
			}
		})
	}
	if digest(t, e) != before {
		t.Fatal("another agency's result post changed the store")
	}

	// The owner and the roles that see everything.
	for _, who := range []string{owner, "customs", "auditor"} {
		for _, path := range []string{"/v1/decisions/" + ld.DecisionID, "/v1/assignments/" + ld.AssignmentID, "/v1/assignments?agency=" + ld.Agency} {
			if status, _ := e.as(who).do("GET", path, nil, nil); status != http.StatusOK {
				t.Errorf("%s GET %s: status %d, want 200", who, path, status)
			}
		}
	}
	if status, _ := e.as("customs").do("GET", "/v1/decisions/"+notInspected.DecisionID, nil, nil); status != http.StatusOK {
		t.Errorf("customs cannot read a decision routed to no agency: %d", status)
	}
	// An agency's own list needs no parameter, and holds only its own.
	var own, others api.AssignmentList
	if status, _ := e.as(owner).do("GET", "/v1/assignments", nil, &own); status != http.StatusOK || len(own.Assignments) != 1 {
		t.Fatalf("owner's list: %d %+v", status, own)
	}
	if status, _ := e.as(other).do("GET", "/v1/assignments", nil, &others); status != http.StatusOK || len(others.Assignments) != 0 {
		t.Fatalf("other agency's list: %d %+v", status, others)
	}
	// The owner records its result, under its own name.
	var a inspection.Assignment
	if status, _ := e.as(owner).do("POST", "/v1/assignments/"+ld.AssignmentID+"/result", result, &a); status != http.StatusCreated {
		t.Fatalf("owner's result: status %d", status)
	}
	if a.Result == nil || a.Result.Source != owner {
		t.Fatalf("result source %+v, want %s", a.Result, owner)
	}
}

// TestAuthentication: every way a key can be unusable gets 401
// problem+json with a Bearer challenge; a usable key of the wrong role
// gets 403.
func TestAuthentication(t *testing.T) {
	e := newEnv(t, start)
	admin := access.Principal{Name: "admin:test", Role: access.RoleAdmin}
	revoked, err := e.access.CreateKey(context.Background(), admin, inspection.KeyRequest{Principal: "customs:revoked"})
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := e.access.CreateKey(context.Background(), admin, inspection.KeyRequest{Principal: "customs:expiring", ExpiresAt: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	send := func(header string) (int, http.Header, api.Problem) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/policy", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p api.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, resp.Header, p
	}
	good := e.tokens["customs"]
	wrongSecret := good[:len(good)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", good[len(good)-1])+1)%16])
	revokedWrongSecret := revoked.Token[:len(revoked.Token)-4] + "0000"
	if revokedWrongSecret == revoked.Token {
		revokedWrongSecret = revoked.Token[:len(revoked.Token)-4] + "1111"
	}

	if status, _, _ := send("Bearer " + revoked.Token); status != http.StatusOK {
		t.Fatalf("fresh key: %d", status)
	}
	if status, _ := e.as("admin").do("DELETE", "/v1/admin/keys/"+revoked.Key.ID, nil, nil); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	e.clock.Advance(2 * time.Hour)

	for _, tc := range []struct {
		name, header, challenge, detail string
	}{
		{"no header", "", `Bearer realm="ktcn"`, "send an API key"},
		{"other scheme", "Basic " + good, `Bearer realm="ktcn", error="invalid_token"`, "Bearer"},
		{"empty bearer", "Bearer ", `Bearer realm="ktcn", error="invalid_token"`, "Bearer"},
		{"not a ktcn key", "Bearer abc", `Bearer realm="ktcn", error="invalid_token"`, "not a ktcn API key"},
		{"upper-case hex", "Bearer " + strings.ToUpper(good), `Bearer realm="ktcn", error="invalid_token"`, "not a ktcn API key"},
		{"unknown key", "Bearer ktcn_0123456789abcdef_" + strings.Repeat("ab", 32), `Bearer realm="ktcn", error="invalid_token"`, "not valid"},
		{"wrong secret", "Bearer " + wrongSecret, `Bearer realm="ktcn", error="invalid_token"`, "not valid"},
		// A wrong secret learns nothing about the key's state.
		{"revoked key, wrong secret", "Bearer " + revokedWrongSecret, `Bearer realm="ktcn", error="invalid_token"`, "not valid"},
		{"revoked key", "Bearer " + revoked.Token, `Bearer realm="ktcn", error="invalid_token"`, "revoked"},
		{"expired key", "Bearer " + expiring.Token, `Bearer realm="ktcn", error="invalid_token"`, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, p := send(tc.header)
			if status != http.StatusUnauthorized || p.Status != 401 || p.Code != "unauthenticated" {
				t.Fatalf("status %d %+v, want 401 unauthenticated", status, p)
			}
			if hdr.Get("Content-Type") != "application/problem+json" || hdr.Get("WWW-Authenticate") != tc.challenge {
				t.Fatalf("headers %v", hdr)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("detail %q, want it to say %q", p.Detail, tc.detail)
			}
			if strings.Contains(p.Detail, "ktcn_") {
				t.Fatalf("the answer echoes the key: %q", p.Detail)
			}
		})
	}
	if status, _, _ := send("bearer " + good); status != http.StatusOK {
		t.Errorf("the scheme is case-insensitive (RFC 7235): %d", status)
	}
	var p api.Problem
	if status, _ := e.as("nsw").do("GET", "/v1/policy", nil, &p); status != http.StatusForbidden || p.Code != "forbidden" ||
		!strings.Contains(p.Detail, "nsw") {
		t.Errorf("nsw on the policy: %d %+v, want 403 naming the role", status, p)
	}
}

// TestAdminKeys drives the key endpoints: create (the token shown once,
// not cached), use, list (no secret, no hash), revoke (idempotent, at once).
func TestAdminKeys(t *testing.T) {
	e := newEnv(t, start)
	admin := e.as("admin")
	var k api.KeyCreated
	status, hdr := admin.do("POST", "/v1/admin/keys", map[string]any{"principal": "customs:nguyen.van.a", "note": "desk 4"}, &k)
	if status != http.StatusCreated || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d, Cache-Control %q", status, hdr.Get("Cache-Control"))
	}
	if k.Principal != (access.Principal{Name: "customs:nguyen.van.a", Role: access.RoleCustoms}) || k.Status != access.KeyActive ||
		!k.ExpiresAt.Equal(start.Add(access.DefaultKeyTTL)) || k.CreatedBy != "admin" || k.Note != "desk 4" ||
		!strings.HasPrefix(k.Token, "ktcn_"+k.ID+"_") {
		t.Fatalf("created %+v", k)
	}
	e.tokens["customs:nguyen.van.a"] = k.Token
	if status, _ := e.as("customs:nguyen.van.a").do("GET", "/v1/policy", nil, nil); status != http.StatusOK {
		t.Fatalf("new key: %d", status)
	}
	var ag api.KeyCreated
	if status, _ := admin.do("POST", "/v1/admin/keys", map[string]any{"principal": "agency:moh-nifc", "expires_at": "2026-02-01"}, &ag); status != http.StatusCreated ||
		ag.Principal.Agency != "moh-nifc" || ag.Principal.Role != access.RoleAgency {
		t.Fatalf("agency key: %d %+v", status, ag)
	}

	for _, tc := range []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"unknown role", map[string]any{"principal": "boss"}, 422, "principal"},
		{"upper case", map[string]any{"principal": "Customs"}, 422, "principal"},
		{"agency without id", map[string]any{"principal": "agency"}, 422, "principal"},
		{"unknown agency", map[string]any{"principal": "agency:nobody"}, 422, "principal"},
		{"two colons", map[string]any{"principal": "customs:a:b"}, 422, "principal"},
		{"bad person", map[string]any{"principal": "customs:Nguyễn"}, 422, "principal"},
		{"no principal", map[string]any{}, 422, "principal"},
		{"expired already", map[string]any{"principal": "nsw", "expires_at": "2025-01-01"}, 422, "expires_at"},
		{"beyond the longest life", map[string]any{"principal": "nsw", "expires_at": start.Add(keyTTL + time.Hour).Format(time.RFC3339)}, 422, "expires_at"},
		{"bad date", map[string]any{"principal": "nsw", "expires_at": "soon"}, 422, "expires_at"},
		{"unknown field", map[string]any{"principal": "nsw", "role": "admin"}, 400, "role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := digest(t, e)
			var p api.Problem
			if status, _ := admin.do("POST", "/v1/admin/keys", tc.body, &p); status != tc.status || p.Field != tc.field {
				t.Fatalf("status %d field %q (%+v), want %d %q", status, p.Field, p, tc.status, tc.field)
			}
			if digest(t, e) != before {
				t.Fatal("the store changed")
			}
		})
	}

	var raw json.RawMessage
	if status, _ := e.as("auditor").do("GET", "/v1/admin/keys", nil, &raw); status != http.StatusOK {
		t.Fatalf("list: %d", status)
	}
	if bytes.Contains(raw, []byte("secret")) || bytes.Contains(raw, []byte(k.Token[len(k.Token)-64:])) {
		t.Fatalf("the list shows secrets: %s", raw)
	}
	var list api.KeyList
	_ = json.Unmarshal(raw, &list)
	if len(list.Keys) != len(principals())+2 {
		t.Fatalf("list has %d keys, want %d", len(list.Keys), len(principals())+2)
	}

	var r1, r2 api.KeyInfo
	if status, _ := admin.do("DELETE", "/v1/admin/keys/"+k.ID, nil, &r1); status != http.StatusOK || r1.Status != access.KeyRevoked || r1.RevokedBy != "admin" {
		t.Fatalf("revoke: %d %+v", status, r1)
	}
	e.clock.Advance(time.Minute)
	if status, _ := admin.do("DELETE", "/v1/admin/keys/"+k.ID, nil, &r2); status != http.StatusOK || !r2.RevokedAt.Equal(*r1.RevokedAt) {
		t.Fatalf("revoke again: %d %+v", status, r2)
	}
	if status, _ := e.as("customs:nguyen.van.a").do("GET", "/v1/policy", nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d, want 401 at once", status)
	}
	for _, id := range []string{"0123456789abcdef", "nope", "../admin"} {
		if status, _ := admin.do("DELETE", "/v1/admin/keys/"+id, nil, nil); status != http.StatusNotFound {
			t.Errorf("revoke %q: %d, want 404", id, status)
		}
	}
}

// TestRateLimitPerPrincipal: past its burst a principal gets 429
// problem+json with Retry-After; other principals are not affected.
func TestRateLimitPerPrincipal(t *testing.T) {
	e := newEnvWith(t, start, envOptions{rateLimit: 0.001, rateBurst: 3})
	for i := 0; i < 3; i++ {
		if status, _ := e.as("customs").do("GET", "/v1/policy", nil, nil); status != http.StatusOK {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	var p api.Problem
	status, hdr := e.as("customs").do("GET", "/v1/policy", nil, &p)
	if status != http.StatusTooManyRequests || p.Code != "rate_limited" || hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %+v, want 429 rate_limited", status, p)
	}
	if hdr.Get("Retry-After") != "1000" {
		t.Fatalf("Retry-After %q, want 1000 (one token at 0.001/s)", hdr.Get("Retry-After"))
	}
	if status, _ := e.as("auditor").do("GET", "/v1/policy", nil, nil); status != http.StatusOK {
		t.Fatalf("another principal is throttled too: %d", status)
	}
	if status, _ := e.as(anonymous).do("GET", "/healthz", nil, nil); status != http.StatusOK {
		t.Fatalf("healthz: %d", status)
	}
}

// syncBuffer is a log sink shared by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestKeysNeverInClear creates keys through the use case and the admin
// endpoint, uses them (and some bad ones) on every kind of request, then
// scans every file of the data dir and every log line for the tokens and
// their secrets.
func TestKeysNeverInClear(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnvWith(t, start, envOptions{logs: logs})
	var created api.KeyCreated
	if status, _ := e.as("admin").do("POST", "/v1/admin/keys", map[string]any{"principal": "nsw:backup-link"}, &created); status != http.StatusCreated {
		t.Fatalf("create: %d", status)
	}
	e.tokens["nsw:backup-link"] = created.Token
	ld := e.as("nsw:backup-link").decide("CLEAR-1", importerA, milk("Clear Dairy"))
	e.result(ld.AssignmentID, inspection.OutcomePass)
	e.decision(ld.DecisionID)
	e.as("customs").do("GET", "/v1/nowhere", nil, nil)
	e.as("admin").do("DELETE", "/v1/admin/keys/"+created.ID, nil, nil)
	e.as("nsw:backup-link").do("GET", "/v1/policy", nil, nil) // revoked: 401, logged
	wrong := created.Token[:len(created.Token)-8] + "deadbeef"
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/policy", nil)
	req.Header.Set("Authorization", "Bearer "+wrong)
	if resp, err := e.srv.Client().Do(req); err == nil {
		resp.Body.Close()
	}

	secrets := map[string]string{"wrong token": wrong}
	for name, tok := range e.tokens {
		secrets[name+" token"] = tok
		secrets[name+" secret"] = tok[len(tok)-64:]
	}
	if !bytes.Contains(logs.Bytes(), []byte(`"principal":"nsw:backup-link"`)) {
		t.Fatal("the request log does not name the principal; is it capturing at all?")
	}
	if err := e.db.Close(); err != nil { // flush memtables to tables too
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for what, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s found in %s", what, filepath.Base(path))
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walk: %v (%d files)", err, files)
	}
	for what, s := range secrets {
		if bytes.Contains(logs.Bytes(), []byte(s)) {
			t.Errorf("%s found in the logs", what)
		}
	}
}

// TestSourceIsThePrincipal: what a request records names its principal.
func TestSourceIsThePrincipal(t *testing.T) {
	e := newEnv(t, start)
	alert := map[string]any{"authority": "INFOSAN", "reference": "SRC-1", "reason": "x", "issued_at": start.Format(time.RFC3339),
		"target": map[string]string{"kind": "manufacturer", "manufacturer": "Source Dairy", "origin": "NZ"}}
	var ev inspection.Event
	if status, _ := e.as("customs").do("POST", "/v1/alerts", alert, &ev); status != http.StatusCreated || ev.Source != "customs" {
		t.Fatalf("alert: %d source %q", status, ev.Source)
	}
	ld := e.decide("SRC-2", importerA, milk("Other Source Dairy"))
	e.result(ld.AssignmentID, inspection.OutcomePass)
	var a inspection.Assignment
	e.do("GET", "/v1/assignments/"+ld.AssignmentID, nil, &a)
	if a.Result == nil || a.Result.Source != "agency:"+ld.Agency {
		t.Fatalf("result source %+v", a.Result)
	}
}

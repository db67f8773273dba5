package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
)

// withKeys gives the env keys for more principals (people holding keys
// of two roles, for the four-eyes rule).
func (e *env) withKeys(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		k, err := e.access.CreateKey(context.Background(), access.Principal{Name: "admin:test", Role: access.RoleAdmin},
			inspection.KeyRequest{Principal: n, ExpiresAt: e.clock.Now().Add(30 * day)})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[n] = k.Token
	}
}

// refused checks a request is a 4xx problem naming field (when given),
// with status, and that it changed nothing.
func refused(t *testing.T, e *env, who, method, path string, body any, status int, field string) {
	t.Helper()
	before := digest(t, e)
	var p api.Problem
	got, hdr := e.in(t).as(who).do(method, path, body, &p)
	if got != status || (field != "" && p.Field != field) || hdr.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s as %s: %d %+v, want %d naming %q", method, path, who, got, p, status, field)
	}
	if digest(t, e) != before {
		t.Errorf("%s %s as %s was refused but changed the store", method, path, who)
	}
}

// documentOf returns a version's document as a generic map.
func documentOf(t *testing.T, e *env, version string) map[string]any {
	t.Helper()
	var v inspection.PolicyVersion
	if status, _ := e.in(t).as("customs").do("GET", "/v1/policies/"+version, nil, &v); status != http.StatusOK {
		t.Fatalf("get %s: %d", version, status)
	}
	var m map[string]any
	if err := json.Unmarshal(v.Document, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPolicyLifecycleOverHTTP: draft, edit, validate, submit, approve
// under four eyes bound to the document's hash, activate at a future
// time, and the decisions before and after; every refusal a 4xx
// problem+json that changes nothing; every step in the audit log under
// its principal.
func TestPolicyLifecycleOverHTTP(t *testing.T) {
	e := newEnv(t, start)
	const lan, lanApprover, minh = "policy-author:lan", "policy-approver:lan", "policy-approver:minh"
	e.withKeys(t, lan, lanApprover, minh)
	const v2 = "2026.2-strict"

	var draft inspection.PolicyVersion
	if status, _ := e.as(lan).do("POST", "/v1/policies", map[string]any{"from": "2026.1-default", "version": v2}, &draft); status != http.StatusCreated || draft.State != inspection.PolicyDraft {
		t.Fatalf("draft: %d %+v", status, draft)
	}
	refused(t, e, lan, "POST", "/v1/policies", map[string]any{"from": "2026.1-default", "version": v2}, http.StatusConflict, "version")
	refused(t, e, lan, "POST", "/v1/policies", map[string]any{"from": "nope"}, http.StatusUnprocessableEntity, "from")
	refused(t, e, "customs", "POST", "/v1/policies", map[string]any{"from": "2026.1-default"}, http.StatusForbidden, "")

	// A draft may hold a document that does not validate yet; validation
	// names the path, and submission refuses it.
	doc := documentOf(t, e, v2)
	doc["reduced"].(map[string]any)["consecutive_passes"] = 0
	if status, _ := e.as(lan).do("PUT", "/v1/policies/"+v2, doc, nil); status != http.StatusOK {
		t.Fatalf("edit: %d", status)
	}
	var val inspection.PolicyValidation
	if status, _ := e.as(lan).do("POST", "/v1/policies/"+v2+"/validate", nil, &val); status != http.StatusOK || val.Valid ||
		len(val.Errors) == 0 || val.Errors[0].Path != "reduced.consecutive_passes" {
		t.Fatalf("validate: %d %+v", status, val)
	}
	refused(t, e, lan, "POST", "/v1/policies/"+v2+"/submit", nil, http.StatusUnprocessableEntity, "document.reduced.consecutive_passes")
	// Stricter: five passes in the window to reach reduced, not three.
	doc["reduced"].(map[string]any)["consecutive_passes"] = 5
	if status, _ := e.as(lan).do("PUT", "/v1/policies/"+v2, doc, nil); status != http.StatusOK {
		t.Fatalf("edit: %d", status)
	}
	var sub inspection.PolicyVersion
	if status, _ := e.as(lan).do("POST", "/v1/policies/"+v2+"/submit", nil, &sub); status != http.StatusOK || sub.State != inspection.PolicySubmitted {
		t.Fatalf("submit: %d %+v", status, sub)
	}
	refused(t, e, lan, "PUT", "/v1/policies/"+v2, doc, http.StatusConflict, "version")
	refused(t, e, minh, "POST", "/v1/policies/"+v2+"/activate", nil, http.StatusConflict, "version")
	refused(t, e, lanApprover, "POST", "/v1/policies/"+v2+"/approve", map[string]any{"sha256": sub.SHA256}, http.StatusForbidden, "")
	refused(t, e, lan, "POST", "/v1/policies/"+v2+"/approve", map[string]any{"sha256": sub.SHA256}, http.StatusForbidden, "")
	refused(t, e, minh, "POST", "/v1/policies/"+v2+"/approve", map[string]any{"sha256": draft.SHA256}, http.StatusConflict, "sha256")
	refused(t, e, minh, "POST", "/v1/policies/"+v2+"/approve", map[string]any{}, http.StatusUnprocessableEntity, "sha256")
	var diff api.PolicyDiff
	if status, _ := e.as(minh).do("GET", "/v1/policies/2026.1-default/diff?to="+v2, nil, &diff); status != http.StatusOK || len(diff.Changes) != 2 ||
		diff.Changes[0].Path != "reduced.consecutive_passes" || string(diff.Changes[0].Old) != "3" || string(diff.Changes[0].New) != "5" ||
		diff.Changes[1].Path != "version" {
		t.Fatalf("diff: %d %+v", status, diff)
	}
	var appr inspection.PolicyVersion
	if status, _ := e.as(minh).do("POST", "/v1/policies/"+v2+"/approve", map[string]any{"sha256": sub.SHA256}, &appr); status != http.StatusOK ||
		appr.State != inspection.PolicyApproved || appr.ApprovedSHA256 != sub.SHA256 {
		t.Fatalf("approve: %d %+v", status, appr)
	}

	// Goods with three passes: reduced under the default, normal under v2.
	g := milk("Lifecycle Dairy")
	for i := range 3 {
		ld := e.decide(fmt.Sprintf("LC-%d", i), importerA, g)
		e.clock.Advance(day)
		e.result(ld.AssignmentID, inspection.OutcomePass)
	}
	refused(t, e, minh, "POST", "/v1/policies/"+v2+"/activate", map[string]any{"at": "tomorrow"}, http.StatusUnprocessableEntity, "at")
	at := e.clock.Now().Add(time.Hour)
	var sched inspection.PolicyVersion
	if status, _ := e.as(minh).do("POST", "/v1/policies/"+v2+"/activate", map[string]any{"at": at.Format(time.RFC3339)}, &sched); status != http.StatusOK || sched.State != inspection.PolicyScheduled {
		t.Fatalf("schedule: %d %+v", status, sched)
	}
	before := e.decision(e.decide("LC-BEFORE", importerA, g).DecisionID)
	if before.PolicyVersion != "2026.1-default" || before.Mode != inspection.ModeReduced {
		t.Fatalf("before the switch: %s %s", before.PolicyVersion, before.Mode)
	}
	e.clock.Advance(2 * time.Hour)
	after := e.decision(e.decide("LC-AFTER", importerA, g).DecisionID)
	if after.PolicyVersion != v2 || after.Mode != inspection.ModeNormal {
		t.Fatalf("after the switch: %s %s (%s)", after.PolicyVersion, after.Mode, after.Reason)
	}
	var list api.PolicyList
	if status, _ := e.as("auditor").do("GET", "/v1/policies", nil, &list); status != http.StatusOK {
		t.Fatalf("list: %d", status)
	}
	states := map[string]inspection.PolicyState{}
	for _, v := range list.Policies {
		states[v.Version] = v.State
	}
	if states[v2] != inspection.PolicyActive || states["2026.1-default"] != inspection.PolicyRetired {
		t.Fatalf("states after the switch: %v", states)
	}
	var inForce struct {
		Version string `json:"version"`
	}
	if status, _ := e.as("customs").do("GET", "/v1/policy", nil, &inForce); status != http.StatusOK || inForce.Version != v2 {
		t.Fatalf("GET /v1/policy: %d %s", status, inForce.Version)
	}
	refused(t, e, minh, "POST", "/v1/policies/"+v2+"/retire", nil, http.StatusConflict, "version")

	// Every step under its principal.
	var page api.AuditPage
	if status, _ := e.as("auditor").do("GET", "/v1/audit?limit=1000", nil, &page); status != http.StatusOK {
		t.Fatalf("audit: %d", status)
	}
	want := map[audit.Kind]string{audit.PolicyDrafted: lan, audit.PolicyEdited: lan, audit.PolicySubmitted: lan,
		audit.PolicyApproved: minh, audit.PolicyActivated: minh}
	for _, en := range page.Entries {
		if who, ok := want[en.Kind]; ok && en.Actor == who && len(en.Subjects) > 0 && en.Subjects[len(en.Subjects)-1] == "policy:"+v2 {
			delete(want, en.Kind)
		}
	}
	if len(want) > 0 {
		t.Fatalf("steps missing from the audit log under their principal: %v", want)
	}
}

// TestPolicyDocumentChangedAfterApproval: the store refuses an approved
// record whose document is not the one approved, whoever writes it, and
// activation refuses a version whose stored document is not the approved
// one.
func TestPolicyDocumentChangedAfterApproval(t *testing.T) {
	e := newEnv(t, start)
	const v = "2026.3-tampered"
	author, approver := access.Principal{Name: "policy-author:a", Role: access.RolePolicyAuthor}, access.Principal{Name: "policy-approver:b", Role: access.RolePolicyApprover}
	ctx := context.Background()
	if _, err := e.svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{From: "2026.1-default", Version: v}); err != nil {
		t.Fatal(err)
	}
	sub, err := e.svc.SubmitPolicy(ctx, author, v)
	if err != nil {
		t.Fatal(err)
	}
	appr, err := e.svc.ApprovePolicy(ctx, approver, v, sub.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	before := digest(t, e)
	changed := appr
	changed.Document = []byte(string(appr.Document[:len(appr.Document)-1]) + `,"x":1}`)
	changed.SHA256 = inspection.DocumentSHA256(changed.Document)
	if err := e.db.UpdateRaw(ctx, func(tx inspection.Tx) error { return tx.PutPolicyVersion(changed) }); err == nil {
		t.Fatal("the store took an approved record with another document")
	}
	if digest(t, e) != before {
		t.Fatal("a refused write changed the store")
	}
	// The document decisions cite, changed under the version's label.
	other := []byte(`{"version":"` + v + `","description":"not what was approved"}`)
	if err := e.db.UpdateRaw(ctx, func(tx inspection.Tx) error { return tx.PutPolicy(v, other) }); err != nil {
		t.Fatal(err)
	}
	refused(t, e, "policy-approver", "POST", "/v1/policies/"+v+"/activate", nil, http.StatusConflict, "version")
}

// TestConcurrentActivations: 16 activations at once, of 16 approved
// versions and then 16 of one, leave exactly one version active, the one
// the pointer names.
func TestConcurrentActivations(t *testing.T) {
	e := newEnv(t, start)
	ctx := context.Background()
	author, approver := access.Principal{Name: "policy-author:a", Role: access.RolePolicyAuthor}, access.Principal{Name: "policy-approver:b", Role: access.RolePolicyApprover}
	approved := func(v string) {
		t.Helper()
		if _, err := e.svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{From: "2026.1-default", Version: v}); err != nil {
			t.Fatal(err)
		}
		sub, err := e.svc.SubmitPolicy(ctx, author, v)
		if err == nil {
			_, err = e.svc.ApprovePolicy(ctx, approver, v, sub.SHA256)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(round string, codes []int, wantOK int) {
		t.Helper()
		ok := 0
		for _, c := range codes {
			switch c {
			case http.StatusOK:
				ok++
			case http.StatusConflict:
			default:
				t.Errorf("%s: status %d", round, c)
			}
		}
		if wantOK >= 0 && ok != wantOK {
			t.Errorf("%s: %d activations succeeded, want %d", round, ok, wantOK)
		}
		var list api.PolicyList
		e.as("auditor").do("GET", "/v1/policies", nil, &list)
		var active []string
		for _, v := range list.Policies {
			if v.State == inspection.PolicyActive {
				active = append(active, v.Version)
			}
		}
		p, err := e.svc.PolicyInForce(ctx)
		if len(active) != 1 || err != nil || p.Version != active[0] {
			t.Fatalf("%s: active %v, in force %v (%v)", round, active, p, err)
		}
	}
	run := func(versions []string) []int {
		codes := make([]int, len(versions))
		var wg sync.WaitGroup
		for i, v := range versions {
			wg.Go(func() {
				codes[i], _ = e.in(t).as("policy-approver").do("POST", "/v1/policies/"+v+"/activate", nil, nil)
			})
		}
		wg.Wait()
		return codes
	}
	var many []string
	for i := range 16 {
		v := fmt.Sprintf("conc-%02d", i)
		approved(v)
		many = append(many, v)
	}
	check("16 versions", run(many), 16)
	approved("conc-one")
	same := make([]string, 16)
	for i := range same {
		same[i] = "conc-one"
	}
	check("one version 16 times", run(same), 1)
}

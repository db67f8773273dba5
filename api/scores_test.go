package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/scoring"
	"github.com/ktcn/ktcn/risk"
)

// A score rule changes decisions as written, black-box over HTTP: goods
// that failed once and then passed three times under strict are back to
// normal and, with a valid certificate, legally reduced; a policy that
// withholds reduced while the goods' pessimistic violation rate is above
// 20% decides them normal instead, and the explanation shows the score,
// its interval and its evidence.
func TestScoreRuleWithholdsReduced(t *testing.T) {
	history := func(e *env, name string) line {
		g := milk(name)
		id := strings.ReplaceAll(name, " ", "-")
		d := e.decide(id+"-1", importerA, g)
		e.clock.Advance(day)
		e.result(d.AssignmentID, inspection.OutcomeFail)
		for i := 0; i < 3; i++ {
			st := e.decide(id+"-s"+string(rune('a'+i)), importerA, g)
			if st.Mode != inspection.ModeStrict {
				t.Fatalf("lot %d after a failure: %s", i, st.Mode)
			}
			e.clock.Advance(day)
			e.result(st.AssignmentID, inspection.OutcomePass)
		}
		g.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "H-9", ValidUntil: "2028-12-31"}}
		e.register(g.Manufacturer, g.Origin, g.Certificates[0])
		return g
	}

	// Default policy: no score rule, so the certificate reduces.
	plain := newEnv(t, start)
	g := history(plain, "Rule Dairy")
	d := plain.decision(plain.decide("Rule-Dairy-next", importerA, g).DecisionID)
	if d.Mode != inspection.ModeReduced || len(d.Explanation.Scores) != 4 {
		t.Fatalf("default policy: %s by %s with %d scores", d.Mode, d.Explanation.Rule, len(d.Explanation.Scores))
	}

	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	p.Version = "test-score-rule"
	p.Risk.Rules = []scoring.Rule{{Subject: risk.KindGoods, Above: 0.20, Effect: scoring.EffectNoReduced}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	ruled := newEnvWith(t, start, envOptions{policy: p})
	g = history(ruled, "Rule Dairy")
	ld := ruled.decide("Rule-Dairy-next", importerA, g)
	d = ruled.decision(ld.DecisionID)
	if ld.Mode != inspection.ModeNormal || !ld.Inspect || d.Explanation.Rule != inspection.RuleNormalByScore {
		t.Fatalf("with the rule: %s by %s (%s)", ld.Mode, d.Explanation.Rule, d.Reason)
	}
	goods := d.Explanation.Scores[0]
	if goods.Subject.Kind != risk.KindGoods || goods.Pessimistic <= 0.20 || goods.Interval.Lo >= goods.Mean ||
		goods.Evidence.Counts.N != 4 || goods.Evidence.Counts.NFailed != 1 || len(goods.Evidence.Lots) == 0 ||
		goods.Evidence.Prior.Alpha <= 0 {
		t.Fatalf("goods score lacks its interval or evidence: %+v", goods)
	}
	if !strings.Contains(d.Reason, "interval") || !strings.Contains(d.Reason, "above 20.0%") {
		t.Fatalf("reason %q", d.Reason)
	}

	// The same score through the scores endpoints.
	var one api.SubjectScore
	if status, _ := ruled.do("GET", "/v1/scores/goods:"+d.GoodsKey.String(), nil, &one); status != http.StatusOK ||
		one.Score.Evidence.Counts.N != 4 {
		t.Fatalf("score endpoint %d %+v", status, one)
	}
	var ranked api.ScoreList
	if status, _ := ruled.do("GET", "/v1/scores?kind=goods&limit=5", nil, &ranked); status != http.StatusOK || len(ranked.Scores) == 0 {
		t.Fatalf("ranked %d %+v", status, ranked)
	}
}

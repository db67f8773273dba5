package inspection_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/risk"
)

func defaultSampling(t testing.TB) quota.Rules {
	return mustPolicy(t).Reduced.Sampling
}

// TestDrawMatchesTheDocumentedEncoding recomputes a draw the way
// docs/sampling.md tells an auditor to, byte by byte.
func TestDrawMatchesTheDocumentedEncoding(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	var msg []byte
	for _, part := range []string{"ktcn/quota-draw/v1", "heading:0402", "2026", "105123456780", "3"} {
		msg = binary.BigEndian.AppendUint32(msg, uint32(len(part)))
		msg = append(msg, part...)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	sum := mac.Sum(nil)
	wantU := float64(binary.BigEndian.Uint64(sum[:8])>>11) / math.Pow(2, 53)
	gotHex, gotU := quota.Draw(key, "heading:0402", "2026", "105123456780", 3)
	if gotHex != hex.EncodeToString(sum[:8]) || gotU != wantU || gotU < 0 || gotU >= 1 {
		t.Fatalf("draw %s %v, want %x %v", gotHex, gotU, sum[:8], wantU)
	}
	// Length prefixes keep ("ab","c") and ("a","bc") apart.
	a, _ := quota.Draw(key, "ab", "c", "x", 1)
	b, _ := quota.Draw(key, "a", "bc", "x", 1)
	if a == b {
		t.Fatal("ambiguous encoding")
	}
	// Another period's key gives another draw.
	k26, _ := quota.MasterSecret(key).PeriodKey("2026")
	k27, _ := quota.MasterSecret(key).PeriodKey("2027")
	if bytes.Equal(k26, k27) || quota.Commitment(k26) == quota.Commitment(k27) {
		t.Fatal("period keys repeat")
	}
}

func TestSelectNeverExceedsTheCap(t *testing.T) {
	for _, sel := range []quota.Selection{quota.SelectionUniform, quota.SelectionRiskWeighted} {
		r := defaultSampling(t)
		r.Selection = sel
		c := quota.Counter{Period: "2026", Scope: "heading:0402"}
		// Every draw 0: the rule would take every lot; the cap must hold.
		for i := 0; i < 1000; i++ {
			var rec quota.Record
			c, rec = quota.Select(r, c, "00", 0, []float64{0.5, 1, 2}[i%3])
			if c.Selected*10000 > c.Eligible*r.CapBasisPoints() {
				t.Fatalf("%s: %d selected of %d", sel, c.Selected, c.Eligible)
			}
			if rec.Eligible != c.Eligible || rec.Selected != c.Selected {
				t.Fatalf("record %+v disagrees with counter %+v", rec, c)
			}
		}
		if c.Selected != 50 {
			t.Fatalf("%s: %d selected of 1000 with every draw 0, want the full allowance 50", sel, c.Selected)
		}
	}
}

func TestSelectionProbability(t *testing.T) {
	r := defaultSampling(t) // cap 0.05, gain 0.01, reserve 0
	tests := []struct {
		name               string
		reserve            float64
		eligible, selected int64
		want               float64
	}{
		{"no unused allowance: the rate is the cap", 0, 100, 5, 0.05},
		{"unused allowance raises it", 0, 200, 3, 0.05 + 0.01*7},
		{"running ahead of a reserve lowers it", 2, 100, 5, 0.05 - 0.01*2},
		{"never below zero", 0, 100, 1000, 0},
		{"never above one", 0, 100000, 0, 1},
	}
	for _, tc := range tests {
		r.Reserve = tc.reserve
		if got := quota.SelectionProbability(r, tc.eligible, tc.selected, 1, float64(tc.eligible)); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: q = %v, want %v", tc.name, got, tc.want)
		}
	}
	r.Reserve = 0
	r.Selection = quota.SelectionRiskWeighted
	if got := quota.SelectionProbability(r, 100, 5, 2, 100); math.Abs(got-0.10) > 1e-12 {
		t.Errorf("a lot weighing twice the mean: q = %v, want 0.10", got)
	}
}

func TestQuotaPeriodIsTheVietnameseYear(t *testing.T) {
	// 31 Dec 2025 18:00 UTC is already 1 Jan 2026 in Hà Nội.
	if got := quota.PeriodOf(time.Date(2025, 12, 31, 18, 0, 0, 0, time.UTC)); got != "2026" {
		t.Fatalf("period %s", got)
	}
}

// A closed period's key is revealed on its own only when the policy sets
// reveal_after_days, and not before those days have passed in Hà Nội.
func TestRevealDue(t *testing.T) {
	vn := calendar.Vietnam()
	for _, tc := range []struct {
		days int
		now  time.Time
		want bool
	}{
		{0, time.Date(2030, 1, 1, 0, 0, 0, 0, vn), false}, // unset: never, however late
		{30, time.Date(2026, 12, 31, 23, 0, 0, 0, vn), false},
		{30, time.Date(2027, 1, 30, 23, 59, 59, 0, vn), false},
		{30, time.Date(2027, 1, 31, 0, 0, 0, 0, vn), true},
		{30, time.Date(2027, 1, 30, 17, 0, 0, 0, time.UTC), true}, // 31 Jan 00:00 in Hà Nội
		{1, time.Date(2027, 1, 2, 0, 0, 0, 0, vn), true},
	} {
		got, err := quota.Rules{RevealAfterDays: tc.days}.RevealDue("2026", tc.now)
		if err != nil || got != tc.want {
			t.Errorf("reveal_after_days %d at %s: %v %v, want %v", tc.days, tc.now, got, err, tc.want)
		}
	}
	if _, err := (quota.Rules{RevealAfterDays: 30}).RevealDue("26", time.Now()); err == nil {
		t.Error("a period that is no year: want an error")
	}
}

func TestSamplingRulesValidation(t *testing.T) {
	tests := []struct {
		field  string
		mutate func(*quota.Rules)
	}{
		{"reduced.sampling.cap", func(r *quota.Rules) { r.Cap = 0.06 }},
		{"reduced.sampling.cap", func(r *quota.Rules) { r.Cap = 0.04999 }},
		{"reduced.sampling.scope", func(r *quota.Rules) { r.Scope = "importer_year" }},
		{"reduced.sampling.selection", func(r *quota.Rules) { r.Selection = "biased" }},
		{"reduced.sampling.gain", func(r *quota.Rules) { r.Gain = -1 }},
		{"reduced.sampling.risk_weights.low", func(r *quota.Rules) { r.RiskWeights = map[string]float64{"low": 0, "unknown": 1} }},
		{"reduced.sampling.weight_by", func(r *quota.Rules) { r.WeightBy = "importer_score" }},
		{"reduced.sampling.reveal_after_days", func(r *quota.Rules) { r.RevealAfterDays = -1 }},
		{"reduced.sampling.reveal_after_days", func(r *quota.Rules) { r.RevealAfterDays = 367 }},
	}
	for _, tc := range tests {
		p := mustPolicy(t)
		tc.mutate(&p.Reduced.Sampling)
		err := p.Validate()
		var e *fault.Error
		if err == nil || !asError(err, &e) || e.Field != tc.field {
			t.Errorf("want an error on %s, got %v", tc.field, err)
		}
	}
}

// Under weight_by goods_score a reduced lot's weight in the draw is the
// goods' posterior violation rate, the very score its decision shows, and
// the policy refuses the option when decisions are not scored.
func TestGoodsScoreWeighsTheDraw(t *testing.T) {
	p := mustPolicy(t)
	p.Reduced.Sampling.Selection, p.Reduced.Sampling.WeightBy = quota.SelectionRiskWeighted, quota.WeightByGoodsScore
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	rig := &quotaRig{dir: t.TempDir(), clock: &fixedClock{}, policy: p}
	rig.clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	rig.open(t)
	t.Cleanup(func() { _ = rig.db.Close() })
	svc, clock := rig.svc, rig.clock
	decide := func(id string) inspection.Decision {
		no, q := 1, 5.0
		res, err := svc.Decide(ctx, access.SystemPrincipal(), declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: "Weighted milk", Manufacturer: "Weight Dairy",
				Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Decisions[0]
	}
	for i := 0; i < 3; i++ { // three passes under normal: the goods goes reduced
		d := decide(fmt.Sprintf("W%d", i))
		clock.Set(clock.Now().Add(24 * time.Hour))
		if _, err := svc.RecordResult(ctx, access.SystemPrincipal(), d.AssignmentID, inspection.ResultInput{Outcome: "pass", InspectedAt: clock.Now().Format(time.RFC3339)}); err != nil {
			t.Fatal(err)
		}
	}
	d := decide("W3")
	if d.Mode != inspection.ModeReduced || d.Quota == nil {
		t.Fatalf("decision %s (%s), want a reduced lot with a draw", d.Mode, d.Reason)
	}
	var goods *risk.Score
	for i, sc := range d.Explanation.Scores {
		if sc.Subject.Kind == risk.KindGoods {
			goods = &d.Explanation.Scores[i]
		}
	}
	if goods == nil || !(goods.Mean > 0) {
		t.Fatalf("no goods score in the explanation: %+v", d.Explanation.Scores)
	}
	if d.Quota.Weight != goods.Mean || d.Quota.WeightSum != goods.Mean {
		t.Fatalf("draw weight %v (sum %v), want the goods' posterior mean %v", d.Quota.Weight, d.Quota.WeightSum, goods.Mean)
	}

	p.Risk.ScoreDecisions = false
	var e *fault.Error
	if err := p.Validate(); err == nil || !asError(err, &e) || e.Field != "reduced.sampling.weight_by" {
		t.Fatalf("goods_score without scored decisions: %v", err)
	}
}

func TestLotWeight(t *testing.T) {
	r := defaultSampling(t)
	if w := r.LotWeight("low", 0.3); w != 1 {
		t.Errorf("uniform selection weighs %v", w)
	}
	r.Selection = quota.SelectionRiskWeighted
	if w := r.LotWeight("low", 0.3); w != r.RiskWeights["low"] {
		t.Errorf("by compliance level: %v", w)
	}
	if w := r.LotWeight("", 0.3); w != r.RiskWeights["unknown"] {
		t.Errorf("no level: %v", w)
	}
	r.WeightBy = quota.WeightByGoodsScore
	for _, tc := range []struct{ risk, want float64 }{{0.3, 0.3}, {0, 0.001}, {-1, 0.001}, {math.NaN(), 0.001}, {math.Inf(1), 0.001}, {2, 1}} {
		if w := r.LotWeight("low", tc.risk); w != tc.want {
			t.Errorf("goods risk %v weighs %v, want %v", tc.risk, w, tc.want)
		}
	}
}

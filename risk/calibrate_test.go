package risk_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/risk"
)

// TestCalibrateMixture runs the calibration harness on synthetic history
// from a mixture (not a Beta) with drifting rates, for several drifts and
// half-lives, and pins what the scores must achieve: the worst decile
// separated at AUC >= 0.8 everywhere, the 90% interval covering the true
// current rate in 85–95% of subjects with >= 5 results when the half-life
// suits the drift, and coverage falling as memory lengthens under drift.
// KTCN_CALIBRATION_LARGE=1 runs twenty times the goods, and no drift too.
func TestCalibrateMixture(t *testing.T) {
	goods, drifts := 100, []float64{0.10, 0.25}
	if os.Getenv("KTCN_CALIBRATION_LARGE") != "" {
		goods, drifts = 2000, []float64{0, 0.10, 0.25}
	}
	halfLives := []int{90, 180, 365, 730, 100000}
	inBand := map[[2]int]bool{ // (drift × 100, half-life days) whose coverage must be in band
		{10, 730}: true,
		{25, 180}: true,
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-6s %-9s %8s %9s %7s %7s %6s %7s\n", "drift", "halflife", "subjects", "coverage", "worst", "width", "AUC", "AUCmean")
	for _, drift := range drifts {
		m := mixture{Seed: 1, Groups: 10, GoodsPerGroup: goods, Months: 36, Drift: drift, Switch: 0.05}
		cases := m.cases()
		prevCoverage := 1.0
		for _, hl := range halfLives {
			p := params(func(p *risk.Params) { p.HalfLife = time.Duration(hl) * day })
			r, err := risk.Calibrate(cases, m.end(), p, 5)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("%dd", hl)
			if hl == 1<<20 {
				name = "none"
			}
			fmt.Fprintf(&table, "%-6.2f %-9s %8d %9.3f %7.3f %7.3f %6.3f %7.3f\n", drift, name, r.Subjects, r.Coverage, r.WorstCoverage, r.MeanWidth, r.AUCPessimistic, r.AUCMean)
			if r.AUCPessimistic < 0.8 {
				t.Errorf("drift %v half-life %s: AUC %v below 0.8", drift, name, r.AUCPessimistic)
			}
			if inBand[[2]int{int(drift * 100), hl}] && (r.Coverage < 0.85 || r.Coverage > 0.95) {
				t.Errorf("drift %v half-life %s: coverage %v outside 85–95%%", drift, name, r.Coverage)
			}
			if drift > 0 && r.Coverage > prevCoverage+0.005 {
				t.Errorf("drift %v half-life %s: coverage %v rose with a longer half-life (%v)", drift, name, r.Coverage, prevCoverage)
			}
			prevCoverage = r.Coverage
		}
	}
	t.Log(table.String())
}

func TestCalibrateRejects(t *testing.T) {
	p := risk.DefaultParams()
	if _, err := risk.Calibrate([]risk.Case{{Truth: 2}}, now, p, 5); fieldOf(err) != "cases[0].Truth" {
		t.Errorf("truth 2: %v", err)
	}
	few := []risk.Case{{Subject: risk.Subject{ID: "a"}, History: lots(10, 1, day), Truth: 0.1}}
	if _, err := risk.Calibrate(few, now, p, 5); fieldOf(err) != "cases" {
		t.Errorf("one subject: %v", err)
	}
}

package risk

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// AUC is the area under the ROC curve of score for telling positive from
// negative cases, by the Mann–Whitney U statistic with mid-ranks for ties:
// the probability that a random positive scores above a random negative,
// ties counting one half. It needs at least one of each.
func AUC(score []float64, positive []bool) (float64, error) {
	if len(score) != len(positive) {
		return 0, invalid("positive", "has %d entries for %d scores", len(positive), len(score))
	}
	idx := make([]int, len(score))
	var npos int
	for i, s := range score {
		if math.IsNaN(s) {
			return 0, invalid(fmt.Sprintf("score[%d]", i), "is NaN")
		}
		idx[i] = i
		if positive[i] {
			npos++
		}
	}
	nneg := len(score) - npos
	if npos == 0 || nneg == 0 {
		return 0, invalid("positive", "needs both classes, got %d positive and %d negative", npos, nneg)
	}
	sort.Slice(idx, func(a, b int) bool { return score[idx[a]] < score[idx[b]] })
	var rankSum float64 // of positives, ranks from 1, ties at their mid-rank
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			j++
		}
		mid := float64(i+1+j) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			if positive[idx[k]] {
				rankSum += mid
			}
		}
		i = j
	}
	u := rankSum - float64(npos)*float64(npos+1)/2
	return u / (float64(npos) * float64(nneg)), nil
}

// Coverage is the share of intervals that contain the true value.
func Coverage(intervals []Interval, truth []float64) (float64, error) {
	if len(intervals) != len(truth) {
		return 0, invalid("truth", "has %d entries for %d intervals", len(truth), len(intervals))
	}
	if len(truth) == 0 {
		return 0, invalid("intervals", "is empty")
	}
	var in int
	for i, iv := range intervals {
		if math.IsNaN(truth[i]) {
			return 0, invalid(fmt.Sprintf("truth[%d]", i), "is NaN")
		}
		if iv.Contains(truth[i]) {
			in++
		}
	}
	return float64(in) / float64(len(truth)), nil
}

// Case is one subject of a calibration run: its history and the true
// violation rate at the scoring time, known because the history was
// generated from it.
type Case struct {
	Subject Subject
	// Group is the prior's group (e.g. the HS chapter).
	Group   string
	History []Observation
	Truth   float64
}

// Report is how honest and how useful scores were on cases with known
// truth.
type Report struct {
	HalfLifeDays float64 `json:"half_life_days"`
	Level        float64 `json:"level"`
	MinResults   int     `json:"min_results"`
	// Subjects is how many cases had at least MinResults results by the
	// scoring time; the figures below are over them.
	Subjects int `json:"subjects"`
	// Covered of them had the truth inside their credible interval.
	Covered   int     `json:"covered"`
	Coverage  float64 `json:"coverage"`
	MeanWidth float64 `json:"mean_width"`
	// Worst is the truly worst decile (the ceil(10%) highest true rates,
	// ties by subject); the AUCs are of telling them from the rest by
	// pessimistic bound and by posterior mean.
	Worst          int     `json:"worst"`
	AUCPessimistic float64 `json:"auc_pessimistic"`
	AUCMean        float64 `json:"auc_mean"`
	// WorstCoverage is the coverage within the worst decile: shrinkage
	// toward the group pulls extreme subjects' intervals inward, so it is
	// where intervals fail first.
	WorstCoverage float64 `json:"worst_coverage"`
	// Priors are the fitted group priors, by group.
	Priors []Prior `json:"priors"`
}

// Calibrate fits each group's prior from all its cases' counts, scores
// every case as of now, and reports interval coverage and worst-decile AUC
// over the cases with at least minResults results dated up to now.
func Calibrate(cases []Case, now time.Time, p Params, minResults int) (Report, error) {
	if err := p.Validate(); err != nil {
		return Report{}, err
	}
	counts := make([]Counts, len(cases))
	byGroup := map[string][]Counts{}
	var groups []string
	for i, c := range cases {
		if !(c.Truth >= 0 && c.Truth <= 1) {
			return Report{}, invalid(fmt.Sprintf("cases[%d].Truth", i), "must be in [0, 1], got %v", c.Truth)
		}
		var err error
		if counts[i], err = Accumulate(c.History, now, p.HalfLife); err != nil {
			return Report{}, fmt.Errorf("cases[%d]: %w", i, err)
		}
		if _, ok := byGroup[c.Group]; !ok {
			groups = append(groups, c.Group)
		}
		byGroup[c.Group] = append(byGroup[c.Group], counts[i])
	}
	sort.Strings(groups)
	priors := make(map[string]Prior, len(groups))
	r := Report{HalfLifeDays: p.HalfLife.Hours() / 24, Level: p.Level, MinResults: minResults}
	for _, g := range groups {
		pr, err := FitPrior(g, byGroup[g], now, p)
		if err != nil {
			return Report{}, fmt.Errorf("group %q: %w", g, err)
		}
		priors[g] = pr
		r.Priors = append(r.Priors, pr)
	}

	type eval struct {
		s     Score
		truth float64
	}
	var evals []eval
	for i, c := range cases {
		if counts[i].N < minResults {
			continue
		}
		s, err := ScoreCounts(c.Subject, counts[i], priors[c.Group], now, p)
		if err != nil {
			return Report{}, fmt.Errorf("cases[%d]: %w", i, err)
		}
		evals = append(evals, eval{s, c.Truth})
	}
	r.Subjects = len(evals)
	if r.Subjects < 2 {
		return r, invalid("cases", "%d cases have at least %d results; need 2", r.Subjects, minResults)
	}
	sort.SliceStable(evals, func(i, j int) bool {
		if evals[i].truth != evals[j].truth {
			return evals[i].truth > evals[j].truth
		}
		return evals[i].s.Subject.String() < evals[j].s.Subject.String()
	})
	r.Worst = (r.Subjects + 9) / 10
	pess := make([]float64, r.Subjects)
	mean := make([]float64, r.Subjects)
	worst := make([]bool, r.Subjects)
	var width float64
	var worstCovered int
	for i, e := range evals {
		if e.s.Interval.Contains(e.truth) {
			r.Covered++
			if i < r.Worst {
				worstCovered++
			}
		}
		width += e.s.Interval.Width()
		pess[i], mean[i], worst[i] = e.s.Pessimistic, e.s.Mean, i < r.Worst
	}
	r.Coverage = float64(r.Covered) / float64(r.Subjects)
	r.MeanWidth = width / float64(r.Subjects)
	r.WorstCoverage = float64(worstCovered) / float64(r.Worst)
	var err error
	if r.AUCPessimistic, err = AUC(pess, worst); err != nil {
		return r, err
	}
	if r.AUCMean, err = AUC(mean, worst); err != nil {
		return r, err
	}
	return r, nil
}

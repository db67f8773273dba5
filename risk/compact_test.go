package risk_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ktcn/ktcn/risk"
)

// A score made by ScoreCounts (or a fold's Score without lots) compacts,
// and Restore gives it back to the last bit, also after the compact form
// went through JSON as a store keeps it: any history, prior, half-life,
// level, alert weight, time zone.
func TestCompactRestoresScore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := params(func(p *risk.Params) {
			p.HalfLife = time.Duration(rapid.IntRange(1, 1000).Draw(t, "half-life days")) * 24 * time.Hour
			p.Level = rapid.Float64Range(0.5, 0.99).Draw(t, "level")
			p.AlertWeight = rapid.Float64Range(0, 3).Draw(t, "alert weight")
		})
		prior := risk.Prior{Alpha: rapid.Float64Range(0.02, 20).Draw(t, "alpha"), Beta: rapid.Float64Range(0.02, 200).Draw(t, "beta"),
			Group: "test", Method: "given"}
		zone := time.FixedZone("", 3600*rapid.IntRange(-12, 14).Draw(t, "zone hours"))
		at := now.In(zone).Add(time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "after")))
		hist := randomHistory(rapid.Uint64().Draw(t, "seed"), rapid.IntRange(0, 200).Draw(t, "lots"))
		c, err := risk.Accumulate(hist, now, p.HalfLife)
		if err != nil {
			t.Fatal(err)
		}
		s := risk.Subject{Kind: risk.KindGoods, ID: "g"}
		sc, err := risk.ScoreCounts(s, c, prior, at, p)
		if err != nil {
			t.Fatal(err)
		}
		small, ok := sc.Compact()
		if !ok {
			t.Fatalf("%+v does not compact", sc)
		}
		raw, err := json.Marshal(small)
		if err != nil {
			t.Fatal(err)
		}
		var back risk.Score
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		back.Restore()
		want, _ := json.Marshal(sc)
		got, _ := json.Marshal(back)
		if string(got) != string(want) {
			t.Fatalf("restored after JSON\n%s\nwant\n%s", got, want)
		}
		small.Restore()
		if !reflect.DeepEqual(small, sc) {
			t.Fatalf("restored %+v, want %+v", small, sc)
		}
	})
}

// Evidence lots are kept as they are; what Restore cannot give back (a
// derived number that is not the counts') is not compacted.
func TestCompactRefuses(t *testing.T) {
	p := params(nil)
	hist := randomHistory(7, 50)
	sc, err := risk.ScoreHistory(risk.Subject{Kind: risk.KindGoods, ID: "g"}, hist, mustPrior(t, 1, 19), now, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Evidence.Lots) == 0 {
		t.Fatal("setup: ScoreHistory listed no lots")
	}
	if small, ok := sc.Compact(); !ok || !reflect.DeepEqual(small.Evidence.Lots, sc.Evidence.Lots) {
		t.Errorf("a score with evidence lots: compact %v, lots %+v", ok, small.Evidence.Lots)
	} else if small.Restore(); !reflect.DeepEqual(small, sc) {
		t.Errorf("a score with evidence lots: restored %+v, want %+v", small, sc)
	}
	// Empty counts carry no half-life: the compact score keeps it.
	empty, err := risk.ScoreCounts(risk.Subject{Kind: risk.KindImporter, ID: "new"}, risk.Counts{}, mustPrior(t, 1, 19), now, p)
	if err != nil {
		t.Fatal(err)
	}
	if small, ok := empty.Compact(); !ok || small.Evidence.HalfLifeDays != p.HalfLife.Hours()/24 {
		t.Errorf("empty counts: compact %+v, %v", small, ok)
	} else if small.Restore(); !reflect.DeepEqual(small, empty) {
		t.Errorf("empty counts: restored %+v, want %+v", small, empty)
	}
	for name, edit := range map[string]func(*risk.Score){
		"mean":        func(s *risk.Score) { s.Mean += 1e-17 + s.Mean*1e-15 },
		"pessimistic": func(s *risk.Score) { s.Pessimistic = s.Interval.Lo },
		"at":          func(s *risk.Score) { s.At = s.At.Add(time.Nanosecond) },
		"half-life":   func(s *risk.Score) { s.Evidence.HalfLifeDays++ },
		"posterior":   func(s *risk.Score) { s.Evidence.PosteriorBeta++ },
	} {
		x := sc
		edit(&x)
		if _, ok := x.Compact(); ok {
			t.Errorf("%s: a score Restore cannot give back compacted", name)
		}
	}
}

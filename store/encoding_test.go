package store_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/risk"
)

// The store encodes with goccy/go-json for speed, but its format is
// encoding/json's bytes: inspection.EncodedWriter bodies, audit digests
// over stored records and every reader outside ktcn rely on it. The shapes
// that differ between JSON encoders are here: floats at the exponent
// boundaries, HTML characters, invalid UTF-8, control and line-separator
// characters, maps (key order), raw messages, times with zones, byte
// slices, omitempty; and a decision with scores, evidence and quota.
func TestEncodingIsEncodingJSON(t *testing.T) {
	type shapes struct {
		F  float64            `json:"f"`
		S  string             `json:"s,omitempty"`
		M  map[string]float64 `json:"m"`
		P  *time.Time         `json:"p,omitempty"`
		B  []byte             `json:"b"`
		RM json.RawMessage    `json:"rm,omitempty"`
		I  int64              `json:"i"`
	}
	at := time.Date(2026, 11, 30, 15, 4, 5, 123456789, time.FixedZone("ICT", 7*3600))
	floats := []float64{0, math.Copysign(0, -1), 1, 0.1, 1e-7, 1e-6, 1e20, 1e21, 123456789.125, math.MaxFloat64,
		math.SmallestNonzeroFloat64, 0.05, 1.0 / 3, 2.5e-5, -1234.5678e30}
	strs := []string{"", "a<b>&c", "Sữa bột nguyên kem", "tab\tnl\n\"q\"\\", "\u2028\u2029", "\xff\xfe bad utf8",
		"\x00\x01\x1f\x7f", "emoji 🧀"}
	var values []any
	for i, f := range floats {
		for _, s := range strs {
			values = append(values, shapes{F: f, S: s, M: map[string]float64{"z": f, "a": 1, s: 2}, P: &at, B: []byte(s),
				RM: json.RawMessage("{\"x\": 1,\n \"y\": [1, 2]}"), I: int64(i) << 53})
		}
	}
	score := risk.Score{Subject: risk.Subject{Kind: risk.KindGoods, ID: "ab12"}, At: at, Mean: 1.0 / 7,
		Interval: risk.Interval{Lo: 1e-9, Hi: 0.4}, Level: 0.9, Pessimistic: 0.4}
	values = append(values, inspection.Decision{ID: "dec_1", DeclarationID: "105<&>", LineNo: 3, Mode: inspection.ModeReduced,
		Goods:     identity.Goods{HSCode: "04022120", ProductName: "Sữa <bột>", Manufacturer: "m & co", Origin: "NZ"},
		DecidedAt: at, Reason: "reduced; not selected", Explanation: inspection.Explanation{Scores: []risk.Score{score}},
		Quota: &quota.Record{Scope: "heading:0402", Period: "2026", Cap: 0.05, Eligible: 253, Selected: 11, U: 0.91009409758615,
			Weight: 1, WeightSum: 253, Probability: 0.0665, Draw: "e8fbed416a49586e"}})
	for i, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := gojson.Marshal(v)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("value %d: goccy/go-json writes\n%s (%v)\nencoding/json\n%s", i, got, err, want)
		}
	}
}

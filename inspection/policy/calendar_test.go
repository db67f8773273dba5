package policy_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
)

// defaultDigest is the default policy's digest, computed on the tree
// before calendar.make_up_days existed. Stored decisions cite it, so
// adding an optional field must not move it; change this constant only
// with a deliberate new default policy.
const defaultDigest = "ed0279de2071da6a"

func TestDefaultDigestUnchangedByMakeUpDays(t *testing.T) {
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Digest(); got != defaultDigest {
		t.Fatalf("default policy digest = %s, want %s: the canonical document changed", got, defaultDigest)
	}
	if doc := defaultDoc(t); bytes.Contains(doc, []byte("make_up_days")) {
		t.Fatal("canonical default document names make_up_days though it has none")
	}
}

func TestMakeUpDaysInAPolicy(t *testing.T) {
	// The default calendar with a made-up bridge: Friday 2026-01-02 off,
	// Saturday 2026-01-10 worked (08:00-12:00, 13:00-17:00).
	doc := structDoc(t, func(p *policy.Policy) {
		p.Calendar.Holidays = append(p.Calendar.Holidays, "2026-01-02")
		p.Calendar.MakeUpDays = []string{"2026-01-10"}
	})
	if !bytes.Contains(doc, []byte(`"make_up_days":["2026-01-10"]`)) {
		t.Fatalf("make_up_days not written: %s", doc)
	}
	p, err := policy.ParsePolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest() == defaultDigest {
		t.Error("a policy with a make-up day has the default's digest")
	}
	vn := calendar.Vietnam()
	// 24 documents hours from Friday 2026-01-09 16:00: 1h Friday, 8h on
	// the make-up Saturday, 8h Monday 12th, 7h Tuesday 13th.
	if got, want := p.Deadline(false, time.Date(2026, 1, 9, 16, 0, 0, 0, vn)), time.Date(2026, 1, 13, 16, 0, 0, 0, vn); !got.Equal(want) {
		t.Errorf("documents deadline = %s, want %s", got, want)
	}

	bad := structDoc(t, func(p *policy.Policy) { p.Calendar.MakeUpDays = []string{"2026-01-10", "2026-09-02"} })
	_, err = policy.ParsePolicy(bad)
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Field != "calendar.make_up_days[1]" {
		t.Errorf("make-up day that is also a holiday: got %v, want a fault naming calendar.make_up_days[1]", err)
	}
}

package backtest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/reference"
)

// Item is one thing that happened, in the order it happened: a lot being
// decided, a result reaching ktcn, or an alert reaching ktcn. Exactly one
// field is set.
type Item struct {
	Lot    *Lot
	Result *Result
	Alert  *Alert
}

// Lot is a declaration line as it was decided.
type Lot struct {
	DeclarationID string
	LineNo        int
	At            time.Time
	// Goods in canonical form and their identity key.
	Goods     identity.Goods
	GoodsKey  identity.Key
	Procedure policy.Procedure
	// ImporterLevel is the importer's compliance level (weighs the draw
	// under risk-weighted selection by compliance).
	ImporterTaxCode, ImporterLevel string
	Exemption                      string
	// Certificates on record for the lot's manufacturer at its time.
	Certificates []reference.Certificate
	// Manufacturer and HeadingOrigin are the goods' shared subjects
	// (identity.KeysOf): alerts on them reach the goods. A source that
	// resolves alerts to goods itself may leave them zero.
	Manufacturer, HeadingOrigin identity.Key
	// Recorded is what history decided, when known; nil replays the
	// active version as history.
	Recorded *Recorded
}

// Recorded is the decision history made for a lot.
type Recorded struct {
	Mode    inspection.Mode
	Inspect bool
	// Sampled: a reduced lot chosen for a random check.
	Sampled bool
	// Draw is the quota draw's hex, when history kept it ("" compares
	// nothing).
	Draw string
}

// Result is an agency's result reaching ktcn.
type Result struct {
	// ID orders results of the same instant as the service does
	// (inspection.ResultEventID of the assignment).
	ID string
	// DecisionID is the decided lot's (identity.DecisionID).
	DecisionID              string
	GoodsKey                identity.Key
	ImporterTaxCode         string
	Outcome                 inspection.Outcome
	InspectedAt, RecordedAt time.Time
}

// Alert is an authority's warning reaching ktcn, with the goods it
// reaches: either resolved by the source (Goods), or named by its shared
// subject (a manufacturer or heading × origin), which reaches every goods
// whose lots name that subject.
type Alert struct {
	ID, Authority        string
	IssuedAt, RecordedAt time.Time
	Goods                []identity.Key
	Subject              inspection.Subject
	// OnGoods: the alert names the goods themselves (one goods, Target),
	// not their manufacturer or heading × origin.
	OnGoods bool
	Target  identity.Goods
}

// Config is one backtest.
type Config struct {
	Active, Candidate *policy.Policy
	// Keys give the quota's period keys; both sides draw under the same
	// keys, so a lot's draw is the same number on both sides.
	Keys quota.Keys
	// MaxLag bounds how long after it happened a result or alert reaches
	// ktcn; trimming per-goods history relies on it (zero: 30 days). An
	// event later than that is counted (Report.LateEvents): the goods'
	// decisions may then differ from the service's.
	MaxLag time.Duration
	// MaxChanges is how many changed lots the report keeps (zero: 100);
	// OnChange sees every one.
	MaxChanges int
	OnChange   func(Change) error
	// Progress, when set, is called with the lots done every few thousand
	// lots and at the end.
	Progress func(lots int64)
	// From and To bound the stretch reported (zero: unbounded). History
	// before From is replayed too, on both sides, so goods, resemblance
	// and the quota's counters stand at From as the candidate would have
	// left them had it been in force from the start of the history; its
	// lots are not reported. The replay ends at the first item at or
	// after To: results not in by To are awaited.
	From, To time.Time
}

// ErrConfig reports a backtest that cannot run as configured.
var ErrConfig = errors.New("backtest: invalid configuration")

const progressEvery = 8192

// goods is what the replay keeps per goods: its history and what
// resemblance needs.
type goods struct {
	hist      history
	firstDecl string // the declaration the goods were first decided in
	quality   bool
	indexed   bool // in its resemblance group: the service holds a state for it
	ownEvents int32
	// subjects are the goods' shared subjects (from its first lot), and
	// synced how many of each one's alerts its history holds.
	subjects [2]inspection.Subject
	synced   [2]int
}

// sharedAlert is an alert on a shared subject, kept for the goods that
// read it (alerts are few next to lots).
type sharedAlert struct {
	e          event
	recordedAt int64
}

// known is a goods of a resemblance group, once decided.
type known struct {
	key   identity.Key
	match string
}

// replay is the state of one Run.
type replay struct {
	cfg     Config
	pols    []*policy.Policy
	loc     *time.Location
	maxLag  int64
	goods   map[identity.Key]*goods
	groups  map[identity.Key][]known
	shared  map[inspection.Subject][]sharedAlert
	sides   [2]*side // active, candidate
	pending map[string]*pendingLot
	scratch []inspection.Event
	last    time.Time // the last lot's time
	rep     *Report
	base    inspection.RandomTally
}

// pendingLot is a lot history inspected whose result has not arrived.
type pendingLot struct {
	sampled bool    // history's random check
	inspect [2]bool // per side
	// pi is the inclusion probability of history's draw (the active
	// side's, which is history's when the replay is exact).
	pi float64
}

// Run replays src under cfg.Candidate and cfg.Active side by side and
// reports. It stops at ctx's end or src's first error (the report is then
// nil).
func Run(ctx context.Context, cfg Config, src iter.Seq2[Item, error]) (*Report, error) {
	if cfg.Active == nil || cfg.Candidate == nil {
		return nil, fmt.Errorf("%w: both an active and a candidate policy are needed", ErrConfig)
	}
	if cfg.Keys == nil && (cfg.Active.Reduced.Sampling.Enabled || cfg.Candidate.Reduced.Sampling.Enabled) {
		return nil, fmt.Errorf("%w: quota keys are needed to draw random checks", ErrConfig)
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 30 * 24 * time.Hour
	}
	if cfg.MaxChanges <= 0 {
		cfg.MaxChanges = 100
	}
	var keys quota.Keys
	if cfg.Keys != nil {
		keys = quota.CacheKeys(cfg.Keys)
	}
	r := &replay{
		cfg: cfg, pols: []*policy.Policy{cfg.Active, cfg.Candidate}, loc: calendar.Vietnam(), maxLag: int64(cfg.MaxLag),
		goods: map[identity.Key]*goods{}, groups: map[identity.Key][]known{}, shared: map[inspection.Subject][]sharedAlert{},
		pending: map[string]*pendingLot{},
		rep:     &Report{ActiveVersion: cfg.Active.Version, CandidateVersion: cfg.Candidate.Version},
	}
	r.sides[0], r.sides[1] = newSide(cfg.Active, keys), newSide(cfg.Candidate, keys)
	n := 0
	for it, err := range src {
		if err != nil {
			return nil, fmt.Errorf("backtest: history: %w", err)
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("backtest stopped: %w", err)
			}
		}
		if !cfg.To.IsZero() && !itemTime(it).Before(cfg.To) {
			break
		}
		switch {
		case it.Lot != nil:
			if err := r.lot(it.Lot); err != nil {
				return nil, err
			}
		case it.Result != nil:
			r.result(it.Result)
		case it.Alert != nil:
			r.alert(it.Alert)
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(r.rep.Lots + r.rep.WarmupLots)
	}
	r.finish()
	return r.rep, nil
}

// itemTime is when an item happened: a lot's decision, a result's or an
// alert's arrival.
func itemTime(it Item) time.Time {
	switch {
	case it.Lot != nil:
		return it.Lot.At
	case it.Result != nil:
		return it.Result.RecordedAt
	case it.Alert != nil:
		return it.Alert.RecordedAt
	}
	return time.Time{}
}

func (r *replay) goodsOf(k identity.Key) *goods {
	g := r.goods[k]
	if g == nil {
		g = &goods{}
		r.goods[k] = g
	}
	return g
}

func (r *replay) lot(l *Lot) error {
	rep := r.rep
	if l.At.Before(r.last) {
		rep.OutOfOrder++
	}
	r.last = l.At
	counting := r.cfg.From.IsZero() || !l.At.Before(r.cfg.From)
	for _, s := range r.sides {
		s.counting = counting
	}
	if !counting {
		rep.WarmupLots++
	} else {
		if rep.From.IsZero() {
			rep.From = l.At
		}
		rep.To = l.At
		rep.Lots++
	}
	g := r.goodsOf(l.GoodsKey)
	newGoods := false
	if g.firstDecl == "" {
		g.firstDecl, g.quality = l.DeclarationID, l.Procedure == policy.ProcedureQuality
		g.subjects = [2]inspection.Subject{{Kind: inspection.SubjectManufacturer, Key: l.Manufacturer},
			{Kind: inspection.SubjectHeadingOrigin, Key: l.HeadingOrigin}}
		r.index(g, l.GoodsKey, l.Goods)
	}
	r.sync(g)
	var group identity.Key
	var name string
	if g.firstDecl == l.DeclarationID && g.ownEvents == 0 {
		newGoods = true
		group, name = identity.ResemblanceGroup(l.Goods), identity.MatchText(l.Goods.ProductName)
	}
	r.scratch = materialize(r.scratch, g.hist.events, false, r.loc)
	lot := inspection.Lot{ImporterTaxCode: l.ImporterTaxCode, Procedure: l.Procedure, Certificates: l.Certificates, Exemption: l.Exemption}
	var out [2]outcome
	for i, s := range r.sides {
		ev := inspection.Evaluate(s.pol, r.scratch, lot, l.At)
		if newGoods && ev.Mode != inspection.ModeStrict {
			r.resemble(s.pol, l, group, name, &ev)
		}
		o, err := s.decide(l, ev)
		if err != nil {
			return err
		}
		out[i] = o
	}
	if r.cfg.Progress != nil && (rep.Lots+rep.WarmupLots)%progressEvery == 0 {
		r.cfg.Progress(rep.Lots + rep.WarmupLots)
	}
	if !counting {
		return nil
	}
	if err := r.compare(l, out); err != nil {
		return err
	}
	historyInspects, sampled := out[0].inspect, out[0].sampled
	if l.Recorded != nil {
		historyInspects, sampled = l.Recorded.Inspect, l.Recorded.Sampled
	}
	if historyInspects {
		r.pending[identity.DecisionID(l.DeclarationID, l.LineNo)] = &pendingLot{sampled: sampled,
			inspect: [2]bool{out[0].inspect, out[1].inspect}, pi: out[0].pi}
	} else {
		for i, s := range r.sides {
			if out[i].inspect {
				s.fig.Unobserved++ // the side inspects a lot nobody did: its outcome is unknown
			}
		}
	}
	return nil
}

// resemble is the service's resemblance (inspection/resemble.go) over the
// replay's goods: new goods resembling known goods of their group that
// are strict, or failed or were warned about within the window, are
// decided strict.
func (r *replay) resemble(p *policy.Policy, l *Lot, group identity.Key, name string, ev *inspection.Evaluation) {
	threshold, window := p.Resemblance()
	now := l.At.UnixNano()
	for _, k := range r.groups[group] {
		if k.key == l.GoodsKey || identity.MatchSimilarity(name, k.match) < threshold {
			continue
		}
		kg := r.goods[k.key]
		if kg.firstDecl == l.DeclarationID && kg.ownEvents == 0 {
			continue // not known yet: first decided in this same declaration
		}
		why := ""
		for i := len(kg.hist.events) - 1; i >= 0 && why == ""; i-- {
			e := &kg.hist.events[i]
			if e.own && e.failed() && e.at <= now && now-e.at <= int64(window) {
				why = "failed or was warned about on " + time.Unix(0, e.at).In(r.loc).Format(time.DateOnly)
			}
		}
		if why == "" {
			own := materialize(nil, kg.hist.events, true, r.loc)
			if inspection.Evaluate(p, own, inspection.Lot{}, l.At).Mode == inspection.ModeStrict {
				why = "is strict"
			}
		}
		if why != "" {
			ev.Mode = inspection.ModeStrict
			ev.Explanation.Rule = inspection.RuleStrictResemblance
			ev.Explanation.Reason = fmt.Sprintf("strict: new goods resembling known goods %s, which %s", k.key, why)
			return
		}
	}
}

func (r *replay) result(res *Result) {
	r.rep.Results++
	e := event{at: res.InspectedAt.UnixNano(), id: res.ID, who: res.ImporterTaxCode, kind: evPass, own: true}
	if res.Outcome == inspection.OutcomeFail {
		e.kind = evFail
	}
	r.addEvent(res.GoodsKey, e, res.RecordedAt)
	id := res.DecisionID
	pl := r.pending[id]
	if pl == nil {
		r.rep.ResultsOfUnknownLots++ // decided before the stretch replayed: evidence only
		return
	}
	delete(r.pending, id)
	failed := res.Outcome == inspection.OutcomeFail
	if pl.sampled && pl.pi > 0 {
		// History's random checks are the unbiased view of the lots
		// nobody inspects, each result weighed by its draw's inclusion
		// probability as the effectiveness ledger weighs it.
		r.base.Add(pl.pi, failed, 1)
	}
	for i, s := range r.sides {
		switch {
		case pl.inspect[i] && failed:
			s.fig.Caught++
		case pl.inspect[i]:
			s.fig.Passed++
		case failed:
			s.fig.Missed++
		}
		if !pl.inspect[i] {
			s.fig.EvidenceNotOwn++
		}
	}
}

// index puts goods in their resemblance group, as the service does when
// it first writes their state (a decision, or an alert on them).
func (r *replay) index(g *goods, k identity.Key, id identity.Goods) {
	if g.indexed {
		return
	}
	g.indexed = true
	group := identity.ResemblanceGroup(id)
	r.groups[group] = append(r.groups[group], known{key: k, match: identity.MatchText(id.ProductName)})
}

func (r *replay) alert(a *Alert) {
	r.rep.Alerts++
	if a.OnGoods && len(a.Goods) == 1 {
		r.index(r.goodsOf(a.Goods[0]), a.Goods[0], a.Target)
	}
	e := event{at: a.IssuedAt.UnixNano(), id: a.ID, who: a.Authority, kind: evAlert, own: a.OnGoods}
	if len(a.Goods) == 0 && a.Subject.Kind != "" {
		r.shared[a.Subject] = append(r.shared[a.Subject], sharedAlert{e: e, recordedAt: a.RecordedAt.UnixNano()})
		return
	}
	for _, k := range a.Goods {
		r.addEvent(k, e, a.RecordedAt)
	}
}

// sync gives goods the alerts on their shared subjects that arrived since
// they last read them. It runs before anything else touches the goods'
// history, so trimming sees every event that had arrived.
func (r *replay) sync(g *goods) {
	for i, sub := range g.subjects {
		if sub.Key == (identity.Key{}) {
			continue
		}
		alerts := r.shared[sub]
		for ; g.synced[i] < len(alerts); g.synced[i]++ {
			a := alerts[g.synced[i]]
			if g.hist.add(a.e) {
				r.rep.LateEvents++
			}
			g.hist.maybeTrim(r.pols, a.recordedAt-r.maxLag, g.quality)
		}
	}
}

func (r *replay) addEvent(k identity.Key, e event, recordedAt time.Time) {
	g := r.goodsOf(k)
	r.sync(g)
	if e.own {
		g.ownEvents++
	}
	if g.hist.add(e) {
		r.rep.LateEvents++
	}
	g.hist.maybeTrim(r.pols, recordedAt.UnixNano()-r.maxLag, g.quality)
}

// Package backtest replays a stretch of history under a candidate policy
// version and the active one side by side, and reports what the candidate
// would have changed: lots per mode and the transition between the two,
// agency and laboratory load against capacity, violations caught and
// missed, quota use, how predictable the random checks were, and every
// lot whose decision changed, with why.
//
// It owns the replay (Run) and its report; it does not own the mode rules
// (inspection.Evaluate), the random check (quota.Sampler) or the policy
// (policy.Policy): it calls them, so a backtest cannot disagree with the
// service about a rule. Where the history comes from (a store, the
// generator) is the caller's business: it hands Run a stream of Items in
// the order they happened. docs/backtest.md describes the method.
package backtest

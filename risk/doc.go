// Package risk scores the compliance of import subjects with honest
// uncertainty: from a subject's inspection history it estimates the
// probability that its next lot violates, with a credible interval and the
// evidence behind both.
//
// # What it owns
//
//   - Time-decayed counts (Counts): passes, failures and alerts weighted by
//     age, w = 0.5^(age/HalfLife), kept as raw weighted sums that a store can
//     update one observation at a time and decay to a new time exactly,
//     without replaying history.
//   - The prior (FitPrior): a Beta prior for a subject from its wider group
//     (HS chapter for goods-like subjects, all importers for importers),
//     fitted by empirical Bayes (method of moments) with a capped strength
//     and a documented fallback.
//   - The score (ScoreCounts, ScoreHistory): the posterior
//     Beta(alpha + failures, beta + passes) of the violation rate, its mean,
//     an equal-tailed credible interval at Params.Level (gonum distuv.Beta
//     quantiles) and the pessimistic bound rules use (the interval's upper
//     end), with Evidence: counts, weights, prior, posterior and the most
//     influential lots.
//   - Ranking and calibration: Rank orders subjects by pessimistic bound;
//     AUC (Mann–Whitney) and Coverage measure how well scores separate and
//     how honest their intervals are; Calibrate runs both on histories with
//     known true rates.
//
// # What it does not own
//
// risk does no I/O, reads no clock (the scoring time is always an argument)
// and keeps no state: the same arguments give the same result. It does not
// know subjects' identities (callers supply Subject IDs, typically the
// hashed keys of package inspection), where counts are stored, when they
// are rescored, or what rules do with a score: those belong to inspection,
// store and the policy. It imports only the standard library and gonum;
// inspection imports risk, never the other way round.
//
// # No panics
//
// gonum's Beta distribution panics on non-positive shapes and returns NaN
// for shapes beyond about 1e300. Every input is validated first (finite,
// non-negative counts no larger than MaxWeight, prior shapes in
// [MinShape, MaxWeight], a level in (0, 1)) and every quantile is checked to
// be a number in [0, 1]; invalid input is an *Error naming the field.
package risk

// Package inspection is the domain of ktcn: goods identity, the versioned
// policy, the inspection modes and their transitions (strict, normal,
// reduced, exempt), and the use cases that decide a declaration line,
// record an agency's result and raise an authority's alert.
//
// It owns the rules and declares the storage it needs (Store, ReadTx, Tx)
// and the clock it reads (calendar.Clock). It knows nothing of HTTP or badger: the
// api package translates requests into calls here, and the store package
// satisfies the interfaces declared here.
//
// The mode of a lot is a pure function of the policy, the goods' event
// history (results, alerts, certificates), the lot and the decision time:
// see Evaluate. Nothing incremental decides a mode; the stored goods state
// is a snapshot for display, recomputed from history on every change.
package inspection

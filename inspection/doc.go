// Package inspection is the domain of ktcn: the inspection modes and how a
// lot's mode follows from its goods' history (Evaluate), and the use cases
// every caller goes through (decide a declaration, record a result, raise
// an alert, override a decision, keys, reads), each taking the acting
// principal, with the one write path (write.go) that runs every change
// with its audit entry, in-transaction hooks and the effectiveness
// ledger's tallies (ledger.go). It declares the small
// storage interfaces it consumes (ReadTx, Tx and their parts) and knows
// nothing of HTTP or badger. Whole concepts live in sub-packages it
// imports, which import none of it: fault (errors), calendar (time),
// identity (goods and lot identity), reference (agencies, importers,
// manufacturers), policy (the rule document), quota (the capped random
// check), scoring (score rules and records), audit (the chain) and access
// (principals, roles, keys).
package inspection

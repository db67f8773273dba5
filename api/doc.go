// Package api is ktcn's HTTP interface (echo): routing, authentication by
// API key and authorization by role (one route table, auth.go), per-
// principal rate limits, binding and strict JSON decoding of outside
// input, and the translation of inspection errors into RFC 9457
// problem+json responses in one error handler. It is the only package that
// imports echo; it holds no domain rules (who a principal is and what an
// agency may see are decided in inspection).
package api

// Package api is ktcn's HTTP interface (echo): routing, binding and strict
// JSON decoding of outside input, and the translation of inspection errors
// into RFC 9457 problem+json responses in one error handler. It is the only
// package that imports echo; it holds no domain rules.
package api

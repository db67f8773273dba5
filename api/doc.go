// Package api is ktcn's HTTP interface (echo). It owns routing,
// authentication by API key, the route table that maps each route to the
// domain action it asks for (auth.go: the first, coarse gate), per-
// principal rate limits and the per-address limit on failed
// authentications (authfail.go), the strict, streaming JSON decoder of
// every body with its list bounds (decode.go) and the range checks of
// query numbers (query.go), and the translation of fault codes into
// RFC 9457 problem+json responses in one error handler. It is the only package that imports
// echo; it holds no domain rules: which role may take an action, and what
// an agency may see, are decided by inspection's use cases.
package api

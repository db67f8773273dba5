package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Who may call what: this file is the one place the API decides it.
//
// Every request passes three middlewares in order: authenticate (the
// bearer key, read from the store on every request, unless the client's
// address has failed too often), rate limit (per principal), authorize
// (the route table below). A route missing from the
// table is refused to everyone, so a new endpoint is closed until someone
// writes down who may use it; TestAuthorizationMatrix enumerates the
// router, so it also fails until the new route has a row there.
//
// Record-level isolation (an agency sees only what is routed to it) needs
// the record, so the domain's use cases apply it and answer not found,
// never forbidden, exactly as for a record that does not exist.

// rule says who may call a route: everyone (public), or the roles that
// may take the domain action the route asks for; a loopback rule lets a
// peer on this machine in without a key, and asks the action of the rest.
type rule struct {
	public   bool
	loopback bool
	action   access.Action
}

// open reports whether the request needs no key: a public route, or a
// loopback one asked from this machine.
func (r rule) open(c echo.Context) bool { return r.public || r.loopback && fromLoopback(c) }

func to(a access.Action) rule { return rule{action: a} }

// routeRules maps "METHOD /echo/path/:template" to the domain action it
// asks for; which roles may take each action is decided once, in the
// domain (access.RolesFor, where the choices are explained), and
// every use case checks it again. Keep the README's roles table in step.
var routeRules = map[string]rule{
	"GET /healthz": {public: true},
	// The API's description is no secret: clients read it before they
	// have a key.
	"GET /v1/openapi.json": {public: true},
	"GET /v1/reference":    {public: true},
	// Readiness says only ready or which check failed (the store, a job's
	// name, a webhook's ID): nothing a caller could not learn by trying.
	"GET /readyz": {public: true},
	// Prometheus scrapes: a scraper on this machine needs no key, any
	// other needs a key of role metrics, admin or auditor (metrics.go).
	"GET /metrics": {loopback: true, action: access.ActReadMetrics},

	"POST /v1/declarations": to(access.ActDecide),
	// The search: an agency finds only lots routed to it (the domain
	// restricts it); quota state only for those who may read quotas.
	"GET /v1/decisions":               to(access.ActReadDecisions),
	"GET /v1/decisions/:id":           to(access.ActReadDecisions),
	"POST /v1/decisions/:id/override": to(access.ActOverride),
	// A relaxing override's second pair of eyes is another customs
	// officer (the use case refuses its author).
	"POST /v1/decisions/:id/overrides/:n/confirm": to(access.ActOverride),
	"POST /v1/decisions/:id/overrides/:n/reject":  to(access.ActOverride),
	"GET /v1/assignments":                         to(access.ActReadAssignments),
	"GET /v1/assignments/:id":                     to(access.ActReadAssignments),
	"POST /v1/assignments/:id/result":             to(access.ActRecordResult),
	// The agency's own transitions of an assignment.
	"POST /v1/assignments/:id/accept":      to(access.ActRecordResult),
	"POST /v1/assignments/:id/sample":      to(access.ActRecordResult),
	"POST /v1/assignments/:id/corrections": to(access.ActRecordResult),
	// Each agency's backlog, due and overdue work (an agency: its own).
	"GET /v1/workload":   to(access.ActReadAssignments),
	"POST /v1/alerts":    to(access.ActRaiseAlert),
	"GET /v1/goods/:key": to(access.ActReadGoods),
	// The designated agency's documents check verifies a certificate;
	// customs may register one it checked.
	"POST /v1/manufacturers/:key/certificates": to(access.ActRegisterCertificate),
	// Customs joins two goods identities into one, or parts them.
	"POST /v1/goods/:key/link":   to(access.ActLinkGoods),
	"POST /v1/goods/:key/unlink": to(access.ActLinkGoods),
	"GET /v1/policy":             to(access.ActReadPolicy),
	// Commitments are public knowledge by design, but the period list
	// also shows when periods opened: customs and auditors only. A
	// scope's counts tell how much of its budget is left: never for nsw,
	// which answers importers.
	"GET /v1/quota/periods":                to(access.ActReadQuota),
	"GET /v1/quota/periods/:period/scopes": to(access.ActReadQuota),
	"GET /v1/audit":                        to(access.ActReadAudit),
	// Scores are customs' targeting tool; never shown to importers.
	"GET /v1/scores":          to(access.ActReadScores),
	"GET /v1/scores/:subject": to(access.ActReadScores),

	"POST /v1/admin/keys":       to(access.ActManageKeys),
	"GET /v1/admin/keys":        to(access.ActReadKeys),
	"DELETE /v1/admin/keys/:id": to(access.ActManageKeys),
	// Backups: into the server's backup dir, or streamed to the caller
	// (`ktcn backup`). Admin only: a backup holds every record.
	"POST /v1/admin/backups": to(access.ActBackup),
	"GET /v1/admin/backup":   to(access.ActBackup),

	// The policy lifecycle: authors draft, edit and submit; approvers
	// approve, reject, activate, retire and shadow; whoever reads the
	// policy reads versions, validations, diffs and shadow reports.
	"GET /v1/policies":                    to(access.ActReadPolicy),
	"POST /v1/policies":                   to(access.ActDraftPolicy),
	"GET /v1/policies/:version":           to(access.ActReadPolicy),
	"PUT /v1/policies/:version":           to(access.ActDraftPolicy),
	"POST /v1/policies/:version/validate": to(access.ActReadPolicy),
	"POST /v1/policies/:version/submit":   to(access.ActDraftPolicy),
	"POST /v1/policies/:version/approve":  to(access.ActApprovePolicy),
	"POST /v1/policies/:version/reject":   to(access.ActApprovePolicy),
	"POST /v1/policies/:version/activate": to(access.ActApprovePolicy),
	"POST /v1/policies/:version/retire":   to(access.ActApprovePolicy),
	"GET /v1/policies/:version/diff":      to(access.ActReadPolicy),
	"POST /v1/policies/:version/shadow":   to(access.ActApprovePolicy),
	"GET /v1/policies/:version/shadow":    to(access.ActReadPolicy),
	// The effectiveness ledger is for policy staff, customs and auditors:
	// its random-check figures are quota information NSW never sees.
	"GET /v1/policies/:version/effectiveness": to(access.ActReadPolicy),
	// Backtests: authors and approvers start and cancel them; policy
	// staff, customs and auditors read them (reports hold quota counts).
	"POST /v1/policies/:version/backtests": to(access.ActRunBacktests),
	"GET /v1/backtests/:id":                to(access.ActReadBacktests),
	"GET /v1/backtests/:id/changes":        to(access.ActReadBacktests),
	"DELETE /v1/backtests/:id":             to(access.ActRunBacktests),

	// The NSW feed: nsw, customs, auditors, and agencies (their lots'
	// events only, filtered in the domain). Webhook receivers are admin's.
	"GET /v1/events":                      to(access.ActReadEvents),
	"POST /v1/webhooks":                   to(access.ActManageWebhooks),
	"GET /v1/webhooks":                    to(access.ActManageWebhooks),
	"GET /v1/webhooks/:id":                to(access.ActManageWebhooks),
	"POST /v1/webhooks/:id/rotate-secret": to(access.ActManageWebhooks),
	"POST /v1/webhooks/:id/redeliver":     to(access.ActManageWebhooks),
	"GET /v1/webhooks/:id/dead-letters":   to(access.ActManageWebhooks),
	"DELETE /v1/webhooks/:id":             to(access.ActManageWebhooks),

	// The periodic jobs: admin runs one by hand; the auditor sees how
	// they went.
	"GET /v1/jobs":            to(access.ActReadJobs),
	"POST /v1/jobs/:name/run": to(access.ActRunJobs),
}

func routeKey(method, path string) string { return method + " " + path }

// Context keys for what authentication found.
const (
	ctxPrincipal = "ktcn.principal"
	ctxKeyID     = "ktcn.key_id"
)

// principal is the authenticated caller. Handlers behind authentication
// always have one; its absence is a wiring bug, reported as such rather
// than served as an anonymous caller.
func principal(c echo.Context) (access.Principal, error) {
	p, ok := c.Get(ctxPrincipal).(access.Principal)
	if !ok || !p.Role.Valid() {
		return access.Principal{}, errors.New("api: handler reached without an authenticated principal")
	}
	return p, nil
}

// authenticate resolves the bearer key of every request to a non-public
// route. Unknown paths need a key too, so an anonymous caller learns
// nothing about which routes exist. An address that has failed too often
// is answered 429 before the store is read (authfail.go).
func authenticate(access *inspection.Access, fails *authFailures) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if r, ok := routeRules[routeKey(c.Request().Method, c.Path())]; ok && r.open(c) {
				return next(c)
			}
			addr := clientAddr(c.RealIP())
			if wait, blocked := fails.blocked(addr); blocked {
				c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				return echo.NewHTTPError(http.StatusTooManyRequests,
					fmt.Sprintf("%d failed authentications from this address within %v: try again later", fails.limit, fails.window))
			}
			token, err := bearer(c.Request())
			if err != nil {
				return err
			}
			k, err := access.Authenticate(c.Request().Context(), token)
			if err != nil {
				if fault.CodeOf(err) == fault.Unauthenticated {
					fails.fail(addr)
				}
				return err
			}
			c.Set(ctxPrincipal, k.Acting())
			c.Set(ctxKeyID, k.ID)
			return next(c)
		}
	}
}

// bearer reads "Authorization: Bearer <token>" (RFC 6750). Keys travel only
// in this header: never in a query string, which proxies and access logs
// keep.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", inspection.Unauthenticated("send an API key: Authorization: Bearer <key>")
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", inspection.Unauthenticated("the Authorization header must be: Bearer <key>")
	}
	return strings.TrimSpace(token), nil
}

// authorize applies routeRules to the authenticated principal.
func authorize(log zerolog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			method, path := c.Request().Method, c.Path()
			r, ok := routeRules[routeKey(method, path)]
			if ok && r.open(c) {
				return next(c)
			}
			p, err := principal(c)
			if err != nil {
				return err
			}
			if !ok {
				if registered(c.Echo(), method, path) {
					// Fail closed, and loudly: this is a missing table row.
					log.Error().Str("method", method).Str("path", path).Str("request_id", requestID(c)).Msg("route has no authorization rule; refused")
					return inspection.Forbidden("%s %s has no authorization rule", method, path)
				}
				return next(c) // nothing matched: echo answers 404 or 405
			}
			if !slices.Contains(access.RolesFor(r.action), p.Role) {
				return inspection.Forbidden("the %s role may not %s %s", p.Role, method, path)
			}
			return next(c)
		}
	}
}

// registered reports whether a handler is registered for method and path,
// including a custom not-found route, so that only requests no route
// serves pass authorization without a rule. It runs only on a table miss.
func registered(e *echo.Echo, method, path string) bool {
	for _, r := range e.Routes() {
		if r.Path == path && (r.Method == method || r.Method == echo.RouteNotFound) {
			return true
		}
	}
	return false
}

// Rate limits. The defaults are a safety valve against a runaway client,
// not a quota: far above what NSW or an agency sends, so the benchmarks
// (one principal) and bursts of batch uploads are not throttled.
const (
	DefaultRateLimit = 5000  // sustained requests per second per principal
	DefaultRateBurst = 10000 // requests a principal may send at once
)

// rateLimit limits each authenticated principal separately (echo's token
// bucket, keyed by principal name, so the people behind one role do not
// share a budget). Public routes are not limited here.
func rateLimit(perSecond float64, burst int) echo.MiddlewareFunc {
	store := middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
		Rate: rate.Limit(perSecond), Burst: burst,
	})
	// A refused request waits for one token: at most 1/rate seconds.
	retryAfter := strconv.Itoa(max(1, int(math.Ceil(1/perSecond))))
	detail := fmt.Sprintf("more than %g requests per second (bursts of %d) from one principal", perSecond, burst)
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Skipper: func(c echo.Context) bool { _, ok := c.Get(ctxPrincipal).(access.Principal); return !ok },
		Store:   store,
		IdentifierExtractor: func(c echo.Context) (string, error) {
			p, err := principal(c)
			return p.Name, err
		},
		ErrorHandler: func(c echo.Context, err error) error { return err },
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", retryAfter)
			return echo.NewHTTPError(http.StatusTooManyRequests, detail)
		},
	})
}

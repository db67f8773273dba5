package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/identity"
)

// Config wires the HTTP server; Service and Access are required.
type Config struct {
	Service *inspection.Service
	// Access authenticates every request but GET /healthz and serves the
	// admin key endpoints.
	Access *inspection.Access
	// Feed serves the NSW feed and webhook subscriptions.
	Feed *inspection.Feed
	// Backups takes backups for admins (backup.go); nil answers 503 on
	// the backup routes.
	Backups *inspection.Backups
	Logger  zerolog.Logger
	// BodyLimit caps request bodies (bytes); 0 means DefaultBodyLimit.
	BodyLimit int64
	// RateLimit is the sustained requests per second allowed to each
	// principal, RateBurst how many it may send at once; 0 means
	// DefaultRateLimit and DefaultRateBurst.
	RateLimit float64
	RateBurst int
	// AuthFailures failed authentications from one client address within
	// AuthFailWindow get it 429 until the window ends (authfail.go); 0
	// means DefaultAuthFailures and DefaultAuthFailWindow.
	AuthFailures   int
	AuthFailWindow time.Duration
	// Clock times the failure windows and the workload metrics; nil is
	// the system clock.
	Clock calendar.Clock
	// Jobs lists the periodic jobs and runs one by hand (GET /v1/jobs,
	// POST /v1/jobs/:name/run); nil serves an empty list. GET /metrics
	// reports their runs from the same list.
	Jobs Jobs
	// Ready is what GET /readyz checks beyond the policy in force being
	// readable; nil checks only that.
	Ready Readiness
	// Registry receives the API's metrics and serves GET /metrics (with
	// whatever else the wiring registered on it: the store's); nil is a
	// registry of the API's own.
	Registry *prometheus.Registry
	// Backtests runs backtests of policy versions (backtests.go); nil
	// answers 503 on their routes.
	Backtests *backtest.Jobs
}

// DefaultBodyLimit fits a 50-line declaration with certificates many
// times over while refusing uploads that only cost memory.
const DefaultBodyLimit = 1 << 20

// New builds the echo instance with every route. It panics without a
// Service or an Access: a server that cannot authenticate must not start.
func New(cfg Config) *echo.Echo {
	if cfg.Service == nil || cfg.Access == nil || cfg.Feed == nil {
		panic("api.New: Config.Service, Config.Access and Config.Feed are required")
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	limit := cfg.BodyLimit
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	perSecond, burst := cfg.RateLimit, cfg.RateBurst
	if perSecond <= 0 {
		perSecond = DefaultRateLimit
	}
	if burst <= 0 {
		burst = DefaultRateBurst
	}
	failures, window, clock := cfg.AuthFailures, cfg.AuthFailWindow, cfg.Clock
	if failures <= 0 {
		failures = DefaultAuthFailures
	}
	if window <= 0 {
		window = DefaultAuthFailWindow
	}
	if clock == nil {
		clock = calendar.SystemClock{}
	}
	// The peer's address, never a forwarding header a client can write:
	// failed authentications are counted against it.
	e.IPExtractor = echo.ExtractIPDirect()
	// Every request has an ID (X-Request-Id: the client's when it sent a
	// sane one, else generated), echoed in the response, the request's log
	// lines and its problem body (log.go).
	e.Use(requestIDs()...)
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := newMetrics(reg, cfg.Service, cfg.Feed, cfg.Jobs, clock, cfg.Logger)
	// Every request is counted, refusals included, and a panic too: the
	// recovery inside answers it 500 before the count (metrics.go).
	e.Use(m.instrument)
	e.Use(middleware.Recover())
	e.Use(requestLog(cfg.Logger))
	// Who, how often, whether allowed: see auth.go. Before the body limit,
	// so an anonymous caller gets 401 whatever it sends.
	e.Use(authenticate(cfg.Access, newAuthFailures(failures, window, clock)))
	e.Use(rateLimit(perSecond, burst))
	e.Use(authorize(cfg.Logger))
	e.Use(bodyLimit(limit))

	h := &handlers{svc: cfg.Service, access: cfg.Access, feed: cfg.Feed, backups: cfg.Backups, jobs: cfg.Jobs, ready: cfg.Ready, metrics: m, backtests: cfg.Backtests}
	e.GET("/healthz", h.health)
	e.GET("/readyz", h.readiness) // jobs.go
	e.GET("/metrics", m.serve)    // from the loopback, or with a key (auth.go)
	v1 := e.Group("/v1")
	v1.GET("/openapi.json", openAPIJSONHandler) // openapi.go
	v1.GET("/reference", referencePage)
	v1.POST("/declarations", as(h.postDeclaration))
	v1.GET("/decisions", as(h.searchDecisions)) // search.go
	v1.GET("/decisions/:id", as(h.getDecision)) // override.go
	v1.POST("/decisions/:id/override", as(h.postOverride))
	v1.POST("/decisions/:id/overrides/:n/confirm", as(h.confirmOverride))
	v1.POST("/decisions/:id/overrides/:n/reject", as(h.rejectOverride))
	v1.GET("/assignments", as(h.listAssignments))
	v1.GET("/assignments/:id", as(h.getAssignment))
	v1.POST("/assignments/:id/result", as(h.postResult))
	v1.POST("/assignments/:id/accept", as(h.acceptAssignment)) // assignments.go
	v1.POST("/assignments/:id/sample", as(h.sampleAssignment))
	v1.POST("/assignments/:id/corrections", as(h.correctResult))
	v1.GET("/workload", as(h.workload))
	v1.POST("/alerts", as(h.postAlert))
	v1.GET("/goods/:key", as(h.getGoods))
	v1.POST("/manufacturers/:key/certificates", as(h.postCertificate))
	v1.POST("/goods/:key/link", as(h.postGoodsLink))
	v1.POST("/goods/:key/unlink", as(h.postGoodsUnlink))
	v1.GET("/policy", as(h.getPolicy))
	v1.GET("/quota/periods", as(h.listQuotaPeriods))
	v1.GET("/quota/periods/:period/scopes", as(h.getQuotaUsage))
	v1.GET("/audit", as(h.listAudit))
	v1.GET("/scores", as(h.listScores))
	v1.GET("/scores/:subject", as(h.getScore))
	v1.POST("/admin/keys", as(h.createKey))
	v1.GET("/admin/keys", as(h.listKeys))
	v1.DELETE("/admin/keys/:id", as(h.revokeKey))
	v1.POST("/admin/backups", as(h.createBackup)) // backup.go
	v1.GET("/admin/backup", as(h.streamBackup))
	v1.GET("/policies", as(h.listPolicies)) // policies.go
	v1.POST("/policies", as(h.createPolicy))
	v1.GET("/policies/:version", as(h.getPolicyVersion))
	v1.PUT("/policies/:version", as(h.putPolicy))
	v1.POST("/policies/:version/validate", as(h.validatePolicy))
	v1.POST("/policies/:version/submit", as(h.submitPolicy))
	v1.POST("/policies/:version/approve", as(h.approvePolicy))
	v1.POST("/policies/:version/reject", as(h.rejectPolicy))
	v1.POST("/policies/:version/activate", as(h.activatePolicy))
	v1.POST("/policies/:version/backtests", as(h.startBacktest)) // backtests.go
	v1.GET("/backtests/:id", as(h.getBacktest))
	v1.GET("/backtests/:id/changes", as(h.backtestChanges))
	v1.DELETE("/backtests/:id", as(h.cancelBacktest))
	v1.POST("/policies/:version/retire", as(h.retirePolicy))
	v1.GET("/policies/:version/diff", as(h.diffPolicies))
	v1.POST("/policies/:version/shadow", as(h.shadowPolicy))
	v1.GET("/policies/:version/shadow", as(h.shadowReport))
	v1.GET("/policies/:version/effectiveness", as(h.effectiveness))
	v1.GET("/events", as(h.listEvents)) // feed.go
	v1.POST("/webhooks", as(h.createWebhook))
	v1.GET("/webhooks", as(h.listWebhooks))
	v1.GET("/webhooks/:id", as(h.getWebhook))
	v1.POST("/webhooks/:id/rotate-secret", as(h.rotateWebhookSecret))
	v1.POST("/webhooks/:id/redeliver", as(h.redeliverWebhook))
	v1.GET("/webhooks/:id/dead-letters", as(h.listDeadLetters))
	v1.DELETE("/webhooks/:id", as(h.deleteWebhook))
	v1.GET("/jobs", as(h.listJobs)) // jobs.go
	v1.POST("/jobs/:name/run", as(h.runJob))
	return e
}

// answer answers a change: 201 when this request made it, 200 when it was
// made before (an idempotent retry) and nothing changed.
func answer(c echo.Context, replayed bool, body any) error {
	if replayed {
		return c.JSON(http.StatusOK, body)
	}
	return c.JSON(http.StatusCreated, body)
}

// as hands a handler the authenticated principal, which every route but
// the public ones has (authenticate ran); its absence is a wiring bug.
func as(h func(echo.Context, access.Principal) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := principal(c)
		if err != nil {
			return err
		}
		return h(c, p)
	}
}

// bodyLimit refuses bodies over n bytes: by Content-Length up front, and
// by counting while reading (chunked bodies have no length).
func bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > n {
				return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "body exceeds "+strconv.FormatInt(n, 10)+" bytes")
			}
			req.Body = http.MaxBytesReader(c.Response(), req.Body, n)
			return next(c)
		}
	}
}

type handlers struct {
	svc     *inspection.Service
	access  *inspection.Access
	feed    *inspection.Feed
	backups *inspection.Backups
	jobs    Jobs
	ready   Readiness
	metrics *metrics
	// backtests is nil when the server runs none.
	backtests *backtest.Jobs
}

// health is liveness: the process is up and answers (with the policy in
// force, read from memory).
func (h *handlers) health(c echo.Context) error {
	p, err := h.svc.PolicyInForce(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "policy_version": p.Version})
}

// DeclarationResponse answers NSW per line. It carries no quota counts:
// they would tell an importer the remaining sampling budget.
type DeclarationResponse struct {
	DeclarationID string         `json:"declaration_id"`
	PolicyVersion string         `json:"policy_version"`
	Lines         []LineDecision `json:"lines"`
}

// LineDecision is one line's answer.
type LineDecision struct {
	LineNo       int             `json:"line_no"`
	DecisionID   string          `json:"decision_id"`
	Mode         inspection.Mode `json:"mode"`
	Inspect      bool            `json:"inspect"`
	Agency       string          `json:"agency,omitempty"`
	AssignmentID string          `json:"assignment_id,omitempty"`
	Reason       string          `json:"reason"`
}

func (h *handlers) postDeclaration(c echo.Context, p access.Principal) error {
	var in declaration.Input
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.Decide(c.Request().Context(), p, in)
	if err != nil {
		return err
	}
	h.metrics.decided(res)
	out := DeclarationResponse{DeclarationID: in.DeclarationID, Lines: make([]LineDecision, 0, len(res.Decisions))}
	for _, d := range res.Decisions {
		out.PolicyVersion = d.PolicyVersion
		out.Lines = append(out.Lines, LineDecision{LineNo: d.LineNo, DecisionID: d.ID, Mode: d.Mode, Inspect: d.Inspect,
			Agency: d.Agency, AssignmentID: d.AssignmentID, Reason: d.Reason})
	}
	return answer(c, res.Replayed, out)
}

// AssignmentList is a page of open assignments.
type AssignmentList struct {
	Assignments []inspection.Assignment `json:"assignments"`
	Next        string                  `json:"next,omitempty"`
}

func (h *handlers) getAssignment(c echo.Context, p access.Principal) error {
	a, err := h.svc.Assignment(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

func (h *handlers) postResult(c echo.Context, p access.Principal) error {
	var in inspection.ResultInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.RecordResult(c.Request().Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return answer(c, res.Replayed, res.Assignment)
}

func (h *handlers) postAlert(c echo.Context, p access.Principal) error {
	var in inspection.AlertInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.RaiseAlert(c.Request().Context(), p, in)
	if err != nil {
		return err
	}
	return answer(c, res.Replayed, res.Alert)
}

func (h *handlers) getGoods(c echo.Context, p access.Principal) error {
	k, err := identity.ParseKey(c.Param("key"))
	if err != nil {
		return err
	}
	st, err := h.svc.GoodsState(c.Request().Context(), p, k)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (h *handlers) getPolicy(c echo.Context, p access.Principal) error {
	pol, err := h.svc.Policy(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pol)
}

// postCertificate registers a certificate a designated agency (or customs)
// checked, on the record of manufacturer :key.
func (h *handlers) postCertificate(c echo.Context, p access.Principal) error {
	var in inspection.CertificateRegistration
	k, err := pathKeyAndBody(c, &in)
	if err != nil {
		return err
	}
	m, err := h.svc.RegisterCertificate(c.Request().Context(), p, k, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, m)
}

// GoodsLinkRequest links the goods in the path into goods To, or (unlink)
// undoes its link; Reason says why.
type GoodsLinkRequest struct {
	To     string `json:"to,omitempty"`
	Reason string `json:"reason"`
}

func (h *handlers) postGoodsLink(c echo.Context, p access.Principal) error {
	var in GoodsLinkRequest
	from, err := pathKeyAndBody(c, &in)
	if err != nil {
		return err
	}
	to, err := identity.ParseKey(in.To)
	if err != nil {
		return inspection.Invalid("to", "%q is not a goods key", in.To)
	}
	l, err := h.svc.LinkGoods(c.Request().Context(), p, from, to, in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, l)
}

func (h *handlers) postGoodsUnlink(c echo.Context, p access.Principal) error {
	var in GoodsLinkRequest
	from, err := pathKeyAndBody(c, &in)
	if err != nil {
		return err
	}
	l, err := h.svc.UnlinkGoods(c.Request().Context(), p, from, in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, l)
}

// pathKeyAndBody reads the goods or manufacturer key in the path, then the
// JSON body into v.
func pathKeyAndBody(c echo.Context, v any) (identity.Key, error) {
	k, err := identity.ParseKey(c.Param("key"))
	if err != nil {
		return k, err
	}
	return k, decodeJSON(c, v)
}

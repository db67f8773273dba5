package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
)

// Config wires the HTTP server.
type Config struct {
	Service *inspection.Service
	Logger  zerolog.Logger
	// BodyLimit caps request bodies (bytes); 0 means DefaultBodyLimit.
	BodyLimit int64
}

// DefaultBodyLimit fits a 50-line declaration with certificates many
// times over while refusing uploads that only cost memory.
const DefaultBodyLimit = 1 << 20

// unauthenticated is the source recorded until authentication lands.
const unauthenticated = "unauthenticated"

// New builds the echo instance with every route.
func New(cfg Config) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	limit := cfg.BodyLimit
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	e.Use(middleware.Recover())
	e.Use(requestLog(cfg.Logger))
	e.Use(bodyLimit(limit))

	h := &handlers{svc: cfg.Service}
	e.GET("/healthz", h.health)
	v1 := e.Group("/v1")
	v1.POST("/declarations", h.postDeclaration)
	v1.GET("/decisions/:id", h.getDecision)
	v1.GET("/assignments", h.listAssignments)
	v1.GET("/assignments/:id", h.getAssignment)
	v1.POST("/assignments/:id/result", h.postResult)
	v1.POST("/alerts", h.postAlert)
	v1.GET("/goods/:key", h.getGoods)
	v1.GET("/policy", h.getPolicy)
	return e
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

func requestLog(log zerolog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // write the response now so the status is known
			}
			status := c.Response().Status
			ev := log.Debug()
			if status >= 500 {
				ev = log.Error()
			} else if status >= 400 {
				ev = log.Info()
			}
			ev.Str("method", c.Request().Method).Str("path", c.Path()).Int("status", status).
				Dur("took", time.Since(start)).Msg("http")
			return nil
		}
	}
}

type handlers struct {
	svc *inspection.Service
}

func (h *handlers) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "policy_version": h.svc.Policy().Version})
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
	DueAt        *time.Time      `json:"due_at,omitempty"`
	Reason       string          `json:"reason"`
}

func (h *handlers) postDeclaration(c echo.Context) error {
	var in inspection.DeclarationInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.Decide(c.Request().Context(), in, unauthenticated)
	if err != nil {
		return err
	}
	out := DeclarationResponse{DeclarationID: in.DeclarationID, Lines: make([]LineDecision, 0, len(res.Decisions))}
	for _, d := range res.Decisions {
		out.PolicyVersion = d.PolicyVersion
		out.Lines = append(out.Lines, LineDecision{LineNo: d.LineNo, DecisionID: d.ID, Mode: d.Mode, Inspect: d.Inspect,
			Agency: d.Agency, AssignmentID: d.AssignmentID, Reason: d.Reason})
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
	}
	return c.JSON(status, out)
}

func (h *handlers) getDecision(c echo.Context) error {
	d, err := h.svc.Decision(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// AssignmentList is a page of open assignments.
type AssignmentList struct {
	Assignments []inspection.Assignment `json:"assignments"`
	Next        string                  `json:"next,omitempty"`
}

func (h *handlers) listAssignments(c echo.Context) error {
	agency := c.QueryParam("agency")
	if agency == "" {
		return inspection.Invalid("agency", "is required")
	}
	limit := 100
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return inspection.Invalid("limit", "must be a whole number from 1 to 1000, got %q", s)
		}
		limit = n
	}
	list, next, err := h.svc.OpenAssignments(c.Request().Context(), agency, c.QueryParam("after"), limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []inspection.Assignment{}
	}
	return c.JSON(http.StatusOK, AssignmentList{Assignments: list, Next: next})
}

func (h *handlers) getAssignment(c echo.Context) error {
	a, err := h.svc.Assignment(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

func (h *handlers) postResult(c echo.Context) error {
	var in inspection.ResultInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.RecordResult(c.Request().Context(), c.Param("id"), in, unauthenticated)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
	}
	return c.JSON(status, res.Assignment)
}

func (h *handlers) postAlert(c echo.Context) error {
	var in inspection.AlertInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.RaiseAlert(c.Request().Context(), in, unauthenticated)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
	}
	return c.JSON(status, res.Alert)
}

func (h *handlers) getGoods(c echo.Context) error {
	k, err := inspection.ParseKey(c.Param("key"))
	if err != nil {
		return err
	}
	st, err := h.svc.GoodsState(c.Request().Context(), k)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (h *handlers) getPolicy(c echo.Context) error {
	return c.JSON(http.StatusOK, h.svc.Policy())
}

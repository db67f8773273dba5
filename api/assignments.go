package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
)

// The agency's queue and its transitions of an assignment.

// queueParams are the parameters GET /v1/assignments reads; any other is
// refused, so a misspelt filter is not silently a list of everything.
var queueParams = []string{"agency", "status", "mode", "check", "overdue", "due_before", "due_after", "sort", "after", "limit"}

// onlyParams refuses a query parameter not in known, naming it (the first
// in name order, so the answer does not vary).
func onlyParams(c echo.Context, known []string) error {
	params := c.QueryParams()
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" {
			return badRequest("query", "a query parameter without a name; known: %s", strings.Join(known, ", "))
		}
		if !slices.Contains(known, name) {
			return badRequest(name, "unknown query parameter %.40q; known: %s", name, strings.Join(known, ", "))
		}
	}
	return nil
}

func queueQuery(c echo.Context) (inspection.QueueQuery, error) {
	var q inspection.QueueQuery
	if err := onlyParams(c, queueParams); err != nil {
		return q, err
	}
	get := func(name string) (string, error) { return queryOnce(c, name) }
	var err error
	if q.Agency, err = get("agency"); err != nil {
		return q, err
	}
	s, err := get("status")
	if err != nil {
		return q, err
	}
	for st := range strings.SplitSeq(s, ",") {
		if st = strings.TrimSpace(st); st != "" {
			q.Status = append(q.Status, inspection.AssignmentStatus(st))
		}
	}
	if s, err = get("mode"); err != nil {
		return q, err
	}
	q.Mode = inspection.Mode(s)
	if q.Check, err = get("check"); err != nil {
		return q, err
	}
	if s, err = get("overdue"); err != nil {
		return q, err
	}
	switch s {
	case "", "false":
	case "true":
		q.Overdue = true
	default:
		return q, inspection.Invalid("overdue", "must be true or false, got %.40q", s)
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"due_before", &q.DueBefore}, {"due_after", &q.DueAfter}} {
		if s, err = get(f.name); err != nil {
			return q, err
		}
		if s != "" {
			t, err := calendar.ParseTime(f.name, s)
			if err != nil {
				return q, err
			}
			*f.to = t
		}
	}
	if q.Sort, err = get("sort"); err != nil {
		return q, err
	}
	if q.After, err = get("after"); err != nil {
		return q, err
	}
	q.Limit, err = pageLimit(c, 100)
	return q, err
}

// listAssignments is an agency's queue: GET /v1/assignments with filters,
// sorted by deadline (or creation), paged by a cursor.
func (h *handlers) listAssignments(c echo.Context, p access.Principal) error {
	q, err := queueQuery(c)
	if err != nil {
		return err
	}
	list, next, err := h.svc.Queue(c.Request().Context(), p, q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, AssignmentList{Assignments: list, Next: next})
}

// AcceptRequest names the officer who takes an inspection on.
type AcceptRequest struct {
	Officer string `json:"officer"`
}

func (h *handlers) acceptAssignment(c echo.Context, p access.Principal) error {
	var in AcceptRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, _, err := h.svc.AcceptAssignment(c.Request().Context(), p, c.Param("id"), in.Officer)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

func (h *handlers) sampleAssignment(c echo.Context, p access.Principal) error {
	var in inspection.SampleInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, _, err := h.svc.SampleAssignment(c.Request().Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

func (h *handlers) correctResult(c echo.Context, p access.Principal) error {
	var in inspection.CorrectionInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, changed, err := h.svc.CorrectResult(c.Request().Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return answer(c, !changed, a)
}

// WorkloadResponse is every agency's work on a day.
type WorkloadResponse struct {
	Date     string                      `json:"date"`
	Agencies []inspection.AgencyWorkload `json:"agencies"`
}

// workload: GET /v1/workload?date=YYYY-MM-DD (default today).
func (h *handlers) workload(c echo.Context, p access.Principal) error {
	if err := onlyParams(c, []string{"date"}); err != nil {
		return err
	}
	s, err := queryOnce(c, "date")
	if err != nil {
		return err
	}
	day := time.Now()
	if s != "" {
		if day, err = calendar.ParseTime("date", s); err != nil {
			return err
		}
	}
	ws, err := h.svc.Workload(c.Request().Context(), p, day)
	if err != nil {
		return err
	}
	if ws == nil {
		ws = []inspection.AgencyWorkload{}
	}
	return c.JSON(http.StatusOK, WorkloadResponse{Date: day.In(calendar.Vietnam()).Format("2006-01-02"), Agencies: ws})
}

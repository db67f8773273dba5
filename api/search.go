package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
)

// Customs' decision search over HTTP:
//
//	GET /v1/decisions?importer=&declaration=&hs=&mode=&inspect=&agency=&from=&to=&overridden=&after=&limit=
//
// Every parameter is optional and read once; a parameter this list does
// not name is 400 naming it (a misspelt filter must not widen the answer
// silently), a bad value 422 naming it. from and to are RFC 3339 or a
// date (YYYY-MM-DD, Vietnam time): decisions at or after from and before
// to, and a date as to includes that whole day.

var searchParams = []string{"importer", "declaration", "hs", "mode", "inspect", "agency", "from", "to", "overridden", "after", "limit"}

// DecisionSearchResponse is a page of decisions and the cursor of the next.
type DecisionSearchResponse = inspection.DecisionPage

func (h *handlers) searchDecisions(c echo.Context, p access.Principal) error {
	q, err := decisionQuery(c)
	if err != nil {
		return err
	}
	page, err := h.svc.SearchDecisions(c.Request().Context(), p, q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

// decisionQuery reads the search's parameters strictly.
func decisionQuery(c echo.Context) (inspection.DecisionQuery, error) {
	var q inspection.DecisionQuery
	if err := onlyParams(c, searchParams); err != nil {
		return q, err
	}
	text := map[string]*string{"importer": &q.Importer, "declaration": &q.Declaration, "hs": &q.HS, "agency": &q.Agency, "after": &q.After}
	for _, name := range []string{"importer", "declaration", "hs", "agency", "after"} {
		s, err := queryOnce(c, name)
		if err != nil {
			return q, err
		}
		*text[name] = s
	}
	mode, err := queryOnce(c, "mode")
	if err != nil {
		return q, err
	}
	q.Mode = inspection.Mode(mode)
	if q.Inspect, err = queryBool(c, "inspect"); err != nil {
		return q, err
	}
	if q.Overridden, err = queryBool(c, "overridden"); err != nil {
		return q, err
	}
	if q.From, err = queryTime(c, "from", false); err != nil {
		return q, err
	}
	if q.To, err = queryTime(c, "to", true); err != nil {
		return q, err
	}
	if q.Limit, err = pageLimit(c, inspection.DefaultSearchLimit); err != nil {
		return q, err
	}
	return q, nil
}

// queryBool reads true or false; nil when absent.
func queryBool(c echo.Context, name string) (*bool, error) {
	s, err := queryOnce(c, name)
	if err != nil || s == "" {
		return nil, err
	}
	switch s {
	case "true":
		return new(true), nil
	case "false":
		return new(false), nil
	}
	return nil, inspection.Invalid(name, "must be true or false, got %.40q", s)
}

// queryTime reads an RFC 3339 time or a YYYY-MM-DD date (the day's start
// in Vietnam); a date as an end (to) is the next day's start, so the day
// is included. Zero when absent.
func queryTime(c echo.Context, name string, end bool) (time.Time, error) {
	s, err := queryOnce(c, name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := calendar.ParseTime(name, s)
	if err != nil {
		return time.Time{}, err
	}
	if end && len(s) == len("2006-01-02") {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

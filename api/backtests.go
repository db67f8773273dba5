package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Backtests over HTTP (inspection/backtest, docs/backtest.md): authors
// and approvers start and cancel them; policy staff, customs and auditors
// read the progress, the report once done, and the changed lots.

// BacktestRequest starts a backtest of the store's history (from and to
// are days, YYYY-MM-DD, either optional) or of a generated one.
type BacktestRequest struct {
	From      string              `json:"from"`
	To        string              `json:"to"`
	Generated *backtest.Generated `json:"generated"`
}

// BacktestChangesPage is a page of a done backtest's changed lots; Next is
// the cursor of the following page, 0 at the end.
type BacktestChangesPage struct {
	Changes []backtest.Change `json:"changes"`
	Next    int               `json:"next"`
}

func (h *handlers) backtestJobs() (*backtest.Jobs, error) {
	if h.backtests == nil {
		return nil, fault.Of(fault.Unavailable, "", "backtests are not configured on this server")
	}
	return h.backtests, nil
}

func backtestDay(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, calendar.Vietnam())
	if err != nil {
		return time.Time{}, inspection.Invalid(field, "must be a day, YYYY-MM-DD, got %q", s)
	}
	return t, nil
}

func (h *handlers) startBacktest(c echo.Context, p access.Principal) error {
	jobs, err := h.backtestJobs()
	if err != nil {
		return err
	}
	var in BacktestRequest
	if err := optionalBody(c, &in); err != nil {
		return err
	}
	req := backtest.Request{Generated: in.Generated}
	if req.From, err = backtestDay("from", in.From); err != nil {
		return err
	}
	if req.To, err = backtestDay("to", in.To); err != nil {
		return err
	}
	j, err := jobs.Start(c.Request().Context(), p, c.Param("version"), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, j)
}

func (h *handlers) getBacktest(c echo.Context, p access.Principal) error {
	jobs, err := h.backtestJobs()
	if err != nil {
		return err
	}
	j, err := jobs.Get(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}

func (h *handlers) cancelBacktest(c echo.Context, p access.Principal) error {
	jobs, err := h.backtestJobs()
	if err != nil {
		return err
	}
	j, err := jobs.Cancel(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}

// backtestChanges pages the changed lots as JSON, or with format=csv
// streams every one as CSV.
func (h *handlers) backtestChanges(c echo.Context, p access.Principal) error {
	jobs, err := h.backtestJobs()
	if err != nil {
		return err
	}
	format, err := queryOnce(c, "format")
	if err != nil {
		return err
	}
	ctx, id := c.Request().Context(), c.Param("id")
	switch format {
	case "", "json":
	case "csv":
		// Read the first page before answering, so an error is still a
		// problem+json and not a broken CSV.
		page, next, err := jobs.Changes(ctx, p, id, 0, 1000)
		if err != nil {
			return err
		}
		w := c.Response()
		w.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		out, err := backtest.NewChangesCSV(w)
		if err != nil {
			return err
		}
		for {
			for _, ch := range page {
				if err := out.Write(ch); err != nil {
					return err
				}
			}
			if next == 0 {
				return out.Flush()
			}
			if page, next, err = jobs.Changes(ctx, p, id, next, 1000); err != nil {
				return err
			}
		}
	default:
		return inspection.Invalid("format", "must be json or csv, got %q", format)
	}
	afterS, err := queryOnce(c, "after")
	if err != nil {
		return err
	}
	after := 0
	if afterS != "" {
		if after, err = strconv.Atoi(afterS); err != nil {
			return inspection.Invalid("after", "must be the next cursor of the previous page, got %q", afterS)
		}
	}
	limit, err := pageLimit(c, 100)
	if err != nil {
		return err
	}
	page, next, err := jobs.Changes(ctx, p, id, after, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, BacktestChangesPage{Changes: page, Next: next})
}

package api

import (
	"net/http"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/labstack/echo/v4"
)

// QuotaPeriodList lists the random-check periods: each period's key
// commitment from when it opened, and its key once revealed after it
// closed, so anyone given the list can later check the revealed key.
type QuotaPeriodList struct {
	Periods []quota.Period `json:"periods"`
}

func (h *handlers) listQuotaPeriods(c echo.Context, p access.Principal) error {
	ps, err := h.svc.QuotaPeriods(c.Request().Context(), p)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []quota.Period{}
	}
	return c.JSON(http.StatusOK, QuotaPeriodList{Periods: ps})
}

// getQuotaUsage answers how a period's random checks used their allowance,
// scope by scope (customs and auditors only: the counts tell an importer
// how much budget is left).
func (h *handlers) getQuotaUsage(c echo.Context, p access.Principal) error {
	u, err := h.svc.QuotaUsage(c.Request().Context(), p, c.Param("period"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

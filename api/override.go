package api

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
)

// Customs overrides and the audit log over HTTP.

// OverrideResponse is a decision after an override, and for a swap the
// other lot, each with every override it has and what is in force now.
type OverrideResponse struct {
	Decision    inspection.DecisionView  `json:"decision"`
	SwappedWith *inspection.DecisionView `json:"swapped_with,omitempty"`
}

func (h *handlers) postOverride(c echo.Context, p access.Principal) error {
	var in inspection.OverrideInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.Override(c.Request().Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return answer(c, res.Replayed, OverrideResponse{Decision: res.Decision, SwappedWith: res.Swapped})
}

// getDecision answers with the decision as decided (explanation intact),
// its overrides, and what is in force. An agency sees a decision routed
// to it, by the decision or by an override.
func (h *handlers) getDecision(c echo.Context, p access.Principal) error {
	v, err := h.svc.DecisionView(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// AuditPage is a page of the audit chain and the head at the time.
type AuditPage struct {
	Entries []audit.Entry `json:"entries"`
	Head    audit.Head    `json:"head"`
	// Next is the after= of the next page; empty at the head.
	Next string `json:"next,omitempty"`
}

// listAudit pages through the chain: GET /v1/audit?after=<seq>&limit=<n>.
func (h *handlers) listAudit(c echo.Context, p access.Principal) error {
	after, err := afterSeq(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c, 100)
	if err != nil {
		return err
	}
	entries, head, err := h.svc.AuditLog(c.Request().Context(), p, after, limit)
	if err != nil {
		return err
	}
	page := AuditPage{Entries: entries, Head: head}
	if page.Entries == nil {
		page.Entries = []audit.Entry{}
	}
	if n := len(entries); n > 0 && entries[n-1].Seq < head.Seq {
		page.Next = strconv.FormatUint(entries[n-1].Seq, 10)
	}
	return c.JSON(http.StatusOK, page)
}

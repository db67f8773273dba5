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

// Four eyes on relaxing overrides. A relaxing override (inspection's
// override.go says which) is answered 201 with its status pending and the
// decision in force unchanged; a second customs officer confirms it, or
// any customs officer rejects it, at
//
//	POST /v1/decisions/{id}/overrides/{n}/confirm
//	POST /v1/decisions/{id}/overrides/{n}/reject   {"reason": "…"}
//
// where {n} is the override's number, as its ID "<decision id>/<n>" and
// its "n" say. The ID is not one path segment: in /v1/overrides/{id}/confirm
// its "/" would have to be sent as %2F, which echo matches on the raw path
// and hands over still escaped, and which a proxy normalising paths turns
// back into "/" (then no route matches). The decision's own path, with the
// override's number under it, needs no escaping anywhere.

// overrideID is the override a confirm or reject path names.
func overrideID(c echo.Context) string { return c.Param("id") + "/" + c.Param("n") }

// confirmOverride: the second officer's confirmation; the override takes
// effect. 200, also for the same person's confirmation again.
func (h *handlers) confirmOverride(c echo.Context, p access.Principal) error {
	var in struct{}
	if err := optionalBody(c, &in); err != nil {
		return err
	}
	res, err := h.svc.ConfirmOverride(c.Request().Context(), p, overrideID(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, OverrideResponse{Decision: res.Decision})
}

// rejectOverride: the pending override never takes effect. 200.
func (h *handlers) rejectOverride(c echo.Context, p access.Principal) error {
	var in ReasonRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.svc.RejectOverride(c.Request().Context(), p, overrideID(c), in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, OverrideResponse{Decision: res.Decision})
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

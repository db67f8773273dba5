package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
)

// The policy lifecycle over HTTP (inspection/policies.go): authors draft,
// edit and submit; approvers approve, reject, activate, retire and run a
// version in shadow; customs and auditors read.

// PolicyCreateRequest starts a draft: from a version, or a document.
type PolicyCreateRequest struct {
	From     string         `json:"from"`
	Version  string         `json:"version"`
	Document jsontext.Value `json:"document"`
}

// PolicyList is every version, newest first (without documents).
type PolicyList struct {
	Policies []inspection.PolicyVersion `json:"policies"`
}

// ApproveRequest names the document approved by its SHA-256.
type ApproveRequest struct {
	SHA256 string `json:"sha256"`
}

// ReasonRequest gives a reason (reject; retire, optional there).
type ReasonRequest struct {
	Reason string `json:"reason"`
}

// ActivateRequest activates now, or at At (RFC 3339) when it is ahead.
type ActivateRequest struct {
	At string `json:"at"`
}

// ShadowRequest starts (true) or stops (false) a shadow run.
type ShadowRequest struct {
	Enabled *bool `json:"enabled"`
}

// PolicyDiff is the field-by-field difference of two versions.
type PolicyDiff struct {
	From    string          `json:"from"`
	To      string          `json:"to"`
	Changes []policy.Change `json:"changes"`
}

func (h *handlers) listPolicies(c echo.Context, p access.Principal) error {
	vs, err := h.svc.Policies(c.Request().Context(), p)
	if err != nil {
		return err
	}
	if vs == nil {
		vs = []inspection.PolicyVersion{}
	}
	return c.JSON(http.StatusOK, PolicyList{Policies: vs})
}

func (h *handlers) getPolicyVersion(c echo.Context, p access.Principal) error {
	v, err := h.svc.PolicyVersionOf(c.Request().Context(), p, c.Param("version"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) createPolicy(c echo.Context, p access.Principal) error {
	var in PolicyCreateRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	v, err := h.svc.CreatePolicy(c.Request().Context(), p, inspection.PolicyDraftInput{From: in.From, Version: in.Version, Document: json.RawMessage(in.Document)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, v)
}

func (h *handlers) putPolicy(c echo.Context, p access.Principal) error {
	var doc jsontext.Value
	if err := decodeJSON(c, &doc); err != nil {
		return err
	}
	v, err := h.svc.EditPolicy(c.Request().Context(), p, c.Param("version"), json.RawMessage(doc))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) validatePolicy(c echo.Context, p access.Principal) error {
	v, err := h.svc.ValidatePolicy(c.Request().Context(), p, c.Param("version"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) submitPolicy(c echo.Context, p access.Principal) error {
	v, err := h.svc.SubmitPolicy(c.Request().Context(), p, c.Param("version"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) approvePolicy(c echo.Context, p access.Principal) error {
	var in ApproveRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.SHA256 == "" {
		return inspection.Invalid("sha256", "is required: the SHA-256 of the document you approve")
	}
	v, err := h.svc.ApprovePolicy(c.Request().Context(), p, c.Param("version"), in.SHA256)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) rejectPolicy(c echo.Context, p access.Principal) error {
	var in ReasonRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	v, err := h.svc.RejectPolicy(c.Request().Context(), p, c.Param("version"), in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// optionalBody decodes a JSON body into v when one is sent.
func optionalBody(c echo.Context, v any) error {
	if c.Request().ContentLength == 0 && len(c.Request().Header.Values(echo.HeaderContentType)) == 0 {
		return nil
	}
	return decodeJSON(c, v)
}

func (h *handlers) activatePolicy(c echo.Context, p access.Principal) error {
	var in ActivateRequest
	if err := optionalBody(c, &in); err != nil {
		return err
	}
	var at *time.Time
	if in.At != "" {
		t, err := calendar.ParseTime("at", in.At)
		if err != nil {
			return err
		}
		at = &t
	}
	v, err := h.svc.ActivatePolicy(c.Request().Context(), p, c.Param("version"), at)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) retirePolicy(c echo.Context, p access.Principal) error {
	var in ReasonRequest
	if err := optionalBody(c, &in); err != nil {
		return err
	}
	v, err := h.svc.RetirePolicy(c.Request().Context(), p, c.Param("version"), in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) diffPolicies(c echo.Context, p access.Principal) error {
	to, err := queryOnce(c, "to")
	if err != nil {
		return err
	}
	if to == "" {
		return inspection.Invalid("to", "is required: the version to compare with")
	}
	changes, err := h.svc.DiffPolicies(c.Request().Context(), p, c.Param("version"), to)
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []policy.Change{}
	}
	return c.JSON(http.StatusOK, PolicyDiff{From: c.Param("version"), To: to, Changes: changes})
}

func (h *handlers) shadowPolicy(c echo.Context, p access.Principal) error {
	var in ShadowRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Enabled == nil {
		return inspection.Invalid("enabled", "is required: true starts the shadow run, false stops it")
	}
	v, err := h.svc.ShadowPolicy(c.Request().Context(), p, c.Param("version"), *in.Enabled)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) shadowReport(c echo.Context, p access.Principal) error {
	after, err := queryOnce(c, "after")
	if err != nil {
		return err
	}
	limit, err := pageLimit(c, inspection.DefaultEventLimit)
	if err != nil {
		return err
	}
	r, err := h.svc.ShadowReportOf(c.Request().Context(), p, c.Param("version"), after, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

// effectiveness is a version's ledger (issue 20): totals and a row per
// rule, each with its rates, intervals and a sentence saying them.
func (h *handlers) effectiveness(c echo.Context, p access.Principal) error {
	e, err := h.svc.Effectiveness(c.Request().Context(), p, c.Param("version"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, e)
}

package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/feed"
)

// The NSW feed over HTTP: the pull (GET /v1/events) and admin's webhook
// subscriptions. The domain filters what each reader may see.

// eventQuery reads after=, limit=, types= and wait= of a pull.
func eventQuery(c echo.Context) (inspection.EventQuery, error) {
	var (
		q   inspection.EventQuery
		err error
	)
	if err := onlyParams(c, []string{"after", "limit", "types", "wait"}); err != nil {
		return q, err
	}
	if q.After, err = afterSeq(c); err != nil {
		return q, err
	}
	if q.Limit, err = pageLimit(c, inspection.DefaultEventLimit); err != nil {
		return q, err
	}
	s, err := queryOnce(c, "types")
	if err != nil {
		return q, err
	}
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			q.Types = append(q.Types, feed.Type(t))
		}
	}
	if s, err = queryOnce(c, "wait"); err != nil {
		return q, err
	}
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			// A bare number is seconds.
			n, nerr := strconv.ParseUint(s, 10, 16)
			if nerr != nil {
				return q, inspection.Invalid("wait", "must be a duration such as 30s, got %.40q", s)
			}
			d = time.Duration(n) * time.Second
		}
		q.Wait = d
	}
	return q, nil
}

func (h *handlers) listEvents(c echo.Context, p access.Principal) error {
	q, err := eventQuery(c)
	if err != nil {
		return err
	}
	if q.Wait > 0 {
		// A long poll may hold the answer longer than the server's write
		// timeout allows an ordinary request.
		_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(q.Wait + 15*time.Second))
	}
	page, err := h.feed.Events(c.Request().Context(), p, q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

// EventPageResponse is a pull's answer: the events, and the cursor to
// pull after next.
type EventPageResponse = inspection.EventPage

// WebhookList is every subscription.
type WebhookList struct {
	Webhooks []inspection.Webhook `json:"webhooks"`
}

// RedeliverRequest asks for a range of events again.
type RedeliverRequest struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

func (h *handlers) createWebhook(c echo.Context, p access.Principal) error {
	var in inspection.WebhookInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	w, err := h.feed.CreateWebhook(c.Request().Context(), p, in)
	if err != nil {
		return err
	}
	// The secret is in this body only: no cache may keep it.
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusCreated, w)
}

func (h *handlers) listWebhooks(c echo.Context, p access.Principal) error {
	ws, err := h.feed.Webhooks(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, WebhookList{Webhooks: ws})
}

func (h *handlers) getWebhook(c echo.Context, p access.Principal) error {
	w, err := h.feed.Webhook(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, w)
}

func (h *handlers) rotateWebhookSecret(c echo.Context, p access.Principal) error {
	w, err := h.feed.RotateWebhookSecret(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, w)
}

func (h *handlers) redeliverWebhook(c echo.Context, p access.Principal) error {
	var in RedeliverRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := h.feed.Redeliver(c.Request().Context(), p, c.Param("id"), feed.Range{From: in.From, To: in.To}); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, in)
}

func (h *handlers) deleteWebhook(c echo.Context, p access.Principal) error {
	w, err := h.feed.DeleteWebhook(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, w)
}

func (h *handlers) listDeadLetters(c echo.Context, p access.Principal) error {
	after, err := afterSeq(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c, inspection.DefaultEventLimit)
	if err != nil {
		return err
	}
	page, err := h.feed.DeadLetters(c.Request().Context(), p, c.Param("id"), after, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

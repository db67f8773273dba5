package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
)

// Key management over HTTP, for admins while the server runs (the
// `ktcn keys` commands do the same against a stopped server's data dir).

// KeyCreateRequest asks for a key. ExpiresAt is RFC 3339 or a date; empty
// means the default lifetime.
type KeyCreateRequest struct {
	Principal string `json:"principal"`
	ExpiresAt string `json:"expires_at"`
	Note      string `json:"note"`
}

// KeyInfo is a key as admins and auditors see it: never the secret, nor
// its hash.
type KeyInfo struct {
	ID        string           `json:"id"`
	Principal access.Principal `json:"principal"`
	Status    access.KeyStatus `json:"status"`
	Note      string           `json:"note,omitempty"`
	CreatedAt time.Time        `json:"created_at"`
	CreatedBy string           `json:"created_by"`
	ExpiresAt time.Time        `json:"expires_at"`
	RevokedAt *time.Time       `json:"revoked_at,omitempty"`
	RevokedBy string           `json:"revoked_by,omitempty"`
}

// KeyCreated is a new key with its token, which is shown only here.
type KeyCreated struct {
	KeyInfo
	Token string `json:"token"`
}

// KeyList is every key, oldest first.
type KeyList struct {
	Keys []KeyInfo `json:"keys"`
}

func (h *handlers) keyInfo(k access.APIKey) KeyInfo {
	return KeyInfo{ID: k.ID, Principal: k.Principal, Status: h.access.KeyStatus(k), Note: k.Note, CreatedAt: k.CreatedAt,
		CreatedBy: k.CreatedBy, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, RevokedBy: k.RevokedBy}
}

func (h *handlers) createKey(c echo.Context, p access.Principal) error {
	var in KeyCreateRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	req := inspection.KeyRequest{Principal: in.Principal, Note: in.Note}
	if in.ExpiresAt != "" {
		at, err := calendar.ParseTime("expires_at", in.ExpiresAt)
		if err != nil {
			return err
		}
		req.ExpiresAt = at
	}
	k, err := h.access.CreateKey(c.Request().Context(), p, req)
	if err != nil {
		return err
	}
	// The token is in this body only: no cache may keep it.
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusCreated, KeyCreated{KeyInfo: h.keyInfo(k.Key), Token: k.Token})
}

func (h *handlers) listKeys(c echo.Context, p access.Principal) error {
	keys, err := h.access.Keys(c.Request().Context(), p)
	if err != nil {
		return err
	}
	out := KeyList{Keys: make([]KeyInfo, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, h.keyInfo(k))
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handlers) revokeKey(c echo.Context, p access.Principal) error {
	k, err := h.access.RevokeKey(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.keyInfo(k))
}

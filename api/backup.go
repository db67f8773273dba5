package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Backups over HTTP: POST /v1/admin/backups writes one into the server's
// backup directory and answers what it wrote; GET /v1/admin/backup streams
// one to the caller (`ktcn backup -out FILE`), who checks its manifest.

func (h *handlers) backupsOrUnavailable() (*inspection.Backups, error) {
	if h.backups == nil {
		return nil, &fault.Error{Code: fault.Unavailable, Message: "backups are not configured on this server"}
	}
	return h.backups, nil
}

func (h *handlers) createBackup(c echo.Context, p access.Principal) error {
	b, err := h.backupsOrUnavailable()
	if err != nil {
		return err
	}
	info, err := b.Create(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, info)
}

// streamBackup sends the backup as it is written. Once the status is sent
// a failure can only abort the transfer; the client's manifest check
// (length and SHA-256) would catch a short body anyway.
func (h *handlers) streamBackup(c echo.Context, p access.Principal) error {
	b, err := h.backupsOrUnavailable()
	if err != nil {
		return err
	}
	if err := p.Require(access.ActBackup); err != nil {
		return err
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, echo.MIMEOctetStream)
	res.Header().Set(echo.HeaderContentDisposition, `attachment; filename="ktcn.backup"`)
	res.Header().Set(echo.HeaderCacheControl, "no-store")
	res.WriteHeader(http.StatusOK)
	if _, err := b.Stream(c.Request().Context(), p, res); err != nil {
		// The status is sent: break the connection, so the client sees a
		// failed transfer rather than a short body (the use case logged
		// the error).
		panic(http.ErrAbortHandler)
	}
	return nil
}

package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"
)

// Problem is an RFC 9457 problem details body. Field, Code and RequestID
// are extension members: the offending input in JSON-path form, ktcn's
// error code, and the request's ID (X-Request-Id), which the server's log
// lines about the request carry too.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
	Field    string `json:"field,omitempty"`
	// RequestID is the X-Request-Id of the request.
	RequestID string `json:"request_id,omitempty"`
}

const problemContentType = "application/problem+json"

var statusOf = map[fault.Code]int{
	fault.Invalid:         http.StatusUnprocessableEntity,
	fault.Unauthenticated: http.StatusUnauthorized,
	fault.NotFound:        http.StatusNotFound,
	fault.Conflict:        http.StatusConflict,
	fault.Forbidden:       http.StatusForbidden,
	fault.Unavailable:     http.StatusServiceUnavailable,
	fault.Internal:        http.StatusInternalServerError,
	fault.Gone:            http.StatusGone,
}

// requestError is bad HTTP-level input (malformed JSON, wrong media type,
// oversize body): it never reaches the domain.
type requestError struct {
	status int
	field  string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(field, format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// errorHandler is the one place errors become HTTP responses.
func errorHandler(log zerolog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := Problem{Instance: c.Request().URL.Path, RequestID: requestID(c)}
		var (
			re *requestError
			he *echo.HTTPError
			ie *fault.Error
		)
		switch {
		case errors.As(err, &re):
			p.Status, p.Code, p.Field, p.Detail = re.status, "invalid", re.field, re.msg
		case errors.As(err, &ie):
			p.Status, p.Code, p.Field = statusOf[ie.Code], string(ie.Code), ie.Field
			p.Detail = ie.Message
			if p.Detail == "" {
				p.Detail = ie.Error()
			}
		case errors.As(err, &he):
			p.Status, p.Code = he.Code, codeForStatus(he.Code)
			p.Detail = fmt.Sprint(he.Message)
			if he.Code == http.StatusRequestEntityTooLarge {
				p.Field = "body"
			}
		case errors.Is(err, fault.ErrNotFound):
			p.Status, p.Code, p.Detail = http.StatusNotFound, string(fault.NotFound), "not found"
		default:
			p.Status, p.Code, p.Detail = http.StatusInternalServerError, string(fault.Internal), "internal error"
		}
		if p.Status == 0 {
			p.Status = http.StatusInternalServerError
		}
		if p.Status >= 500 {
			log.Error().Err(err).Str("path", c.Request().URL.Path).Str("request_id", p.RequestID).Msg("request failed")
		}
		if p.Status == http.StatusUnauthorized {
			// RFC 6750: say which scheme to use, and whether the key sent
			// was refused (as opposed to none sent).
			challenge := `Bearer realm="ktcn"`
			if c.Request().Header.Get(echo.HeaderAuthorization) != "" {
				challenge += `, error="invalid_token"`
			}
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
		}
		p.Title = http.StatusText(p.Status)
		p.Type = "https://ktcn.gov.vn/problems/" + p.Code
		body, _ := json.Marshal(p)
		c.Response().Header().Set(echo.HeaderContentType, problemContentType)
		c.Response().WriteHeader(p.Status)
		if c.Request().Method != http.MethodHead {
			_, _ = c.Response().Write(body)
		}
	}
}

func codeForStatus(status int) string {
	switch {
	case status == http.StatusNotFound:
		return string(fault.NotFound)
	case status == http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case status == http.StatusRequestEntityTooLarge:
		return "too_large"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status == http.StatusUnauthorized:
		return string(fault.Unauthenticated)
	case status == http.StatusForbidden:
		return string(fault.Forbidden)
	case status == http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case status == http.StatusServiceUnavailable:
		return string(fault.Unavailable)
	case status < 500:
		return string(fault.Invalid)
	}
	return string(fault.Internal)
}

package api

import (
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/access"
)

// Log levels of the API (the README's Logs section lists every
// component's):
//
//	debug  every request: method, route template, status, principal,
//	       key ID, request ID, took_ms
//	info   client errors (4xx), sampled: the first clientErrorBurst of
//	       each second, then one in clientErrorEvery
//	error  server errors (5xx), every one, with the error
//
// A request ID ties a request's lines together and to the problem body
// its caller got.

// maxRequestIDLen caps a client-sent X-Request-Id; a longer one, or one
// with other characters than requestIDChar allows, is replaced by a
// generated ID, so a client cannot write arbitrary text into the logs.
const maxRequestIDLen = 64

const (
	clientErrorBurst = 20
	clientErrorEvery = 100
)

func requestIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':'
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, r := range id {
		if !requestIDChar(r) {
			return false
		}
	}
	return true
}

// requestIDs drops an unacceptable client-sent X-Request-Id, then has
// echo's RequestID middleware keep the client's or generate one (and set
// it on the response).
func requestIDs() []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				h := c.Request().Header
				if id := h.Get(echo.HeaderXRequestID); id != "" && !saneRequestID(id) {
					h.Del(echo.HeaderXRequestID)
				}
				return next(c)
			}
		},
		middleware.RequestIDWithConfig(middleware.RequestIDConfig{TargetHeader: echo.HeaderXRequestID}),
	}
}

// requestID is the request's ID, as the RequestID middleware set it on
// the response.
func requestID(c echo.Context) string { return c.Response().Header().Get(echo.HeaderXRequestID) }

func requestLog(log zerolog.Logger) echo.MiddlewareFunc {
	sampled := log.Sample(&zerolog.BurstSampler{Burst: clientErrorBurst, Period: time.Second,
		NextSampler: &zerolog.BasicSampler{N: clientErrorEvery}})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // write the response now so the status is known
			}
			status := c.Response().Status
			var ev *zerolog.Event
			switch {
			case status >= 500:
				ev = log.Error()
			case status >= 400:
				ev = sampled.Info()
			default:
				ev = log.Debug()
			}
			if ev == nil { // level off, or sampled out: build nothing
				return nil
			}
			// The route template, not the URL, and the key's ID, never the
			// key: nothing secret or personal reaches the log.
			ev = ev.Str("method", c.Request().Method).Str("path", c.Path()).Int("status", status).Str("request_id", requestID(c))
			if p, ok := c.Get(ctxPrincipal).(access.Principal); ok {
				id, _ := c.Get(ctxKeyID).(string)
				ev = ev.Str("principal", p.Name).Str("key_id", id)
			}
			ev.Int64("took_ms", time.Since(start).Milliseconds()).Msg("http")
			return nil
		}
	}
}

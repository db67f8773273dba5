package api

import (
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
)

// Numeric query parameters. Each is read once, here, as decimal digits
// only (no sign, no exponent) and checked against its range, so that a
// number no caller could mean is refused naming the parameter instead of
// wrapping or saturating further down.

// maxPage is the largest page any list answers.
const maxPage = 1000

// queryOnce returns the parameter's value, "" when absent; a parameter
// given twice is refused, as the two values would be read by different
// layers differently.
func queryOnce(c echo.Context, name string) (string, error) {
	vs := c.QueryParams()[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", inspection.Invalid(name, "give %s once, got it %d times", name, len(vs))
}

// pageLimit reads limit= (1 to maxPage), def when absent.
func pageLimit(c echo.Context, def int) (int, error) {
	s, err := queryOnce(c, "limit")
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n < 1 || n > maxPage {
		return 0, inspection.Invalid("limit", "must be a whole number from 1 to %d, got %.40q", maxPage, s)
	}
	return int(n), nil
}

// afterSeq reads after= of a log read by sequence (the audit chain, the
// feed, dead letters): 0 (the default) for the start. Sequences are
// counted from 1 and stay below 2^63; the stores ask for after+1, which a
// larger value would wrap to the start.
func afterSeq(c echo.Context) (uint64, error) {
	s, err := queryOnce(c, "after")
	if err != nil || s == "" {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, inspection.Invalid("after", "must be a sequence number from 0 to %d, got %.40q", uint64(1<<63-1), s)
	}
	return n, nil
}

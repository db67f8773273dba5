package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/risk"
)

// SubjectScore is a subject's score with what it is about.
type SubjectScore struct {
	Label string     `json:"label"`
	Group string     `json:"group"`
	Score risk.Score `json:"score"`
}

// ScoreList is a ranked list, riskiest first.
type ScoreList struct {
	Kind   string         `json:"kind"`
	Scores []SubjectScore `json:"scores"`
}

// getScore answers /v1/scores/{kind}:{id}, e.g. goods:<goods key>,
// importer:<tax code>.
func (h *handlers) getScore(c echo.Context, p access.Principal) error {
	kind, id, ok := strings.Cut(c.Param("subject"), ":")
	if !ok || id == "" {
		return inspection.Invalid("subject", "must be kind:id, e.g. goods:<goods key> or importer:<tax code>")
	}
	sc, rec, err := h.svc.Score(c.Request().Context(), p, risk.Subject{Kind: kind, ID: id})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, SubjectScore{Label: rec.Label, Group: rec.Group, Score: sc})
}

// listScores answers /v1/scores?kind=goods&limit=20: the riskiest subjects
// by pessimistic bound, for customs' targeting and agencies' queues.
func (h *handlers) listScores(c echo.Context, p access.Principal) error {
	kind := c.QueryParam("kind")
	if kind == "" {
		kind = risk.KindGoods
	}
	limit, err := pageLimit(c, 20)
	if err != nil {
		return err
	}
	scores, recs, err := h.svc.RankedScores(c.Request().Context(), p, kind, limit)
	if err != nil {
		return err
	}
	out := ScoreList{Kind: kind, Scores: make([]SubjectScore, 0, len(scores))}
	for i, sc := range scores {
		out.Scores = append(out.Scores, SubjectScore{Label: recs[i].Label, Group: recs[i].Group, Score: sc})
	}
	return c.JSON(http.StatusOK, out)
}

package inspection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/risk"
)

// Customs may link one goods identity into another when it finds the two
// are one product that no rule joined (a presentation the canonical form
// misses, or goods whose version 1 keys differed): from then on lots of
// the linked goods are decided as the other, whose history includes the
// linked goods' own. Unlinking restores both as they were. Each is an
// audited change with a reason.

// GoodsLink is customs' link of goods From into goods To (Active), or its
// undoing.
type GoodsLink struct {
	From   identity.Key `json:"from"`
	To     identity.Key `json:"to"`
	Active bool         `json:"active"`
	By     string       `json:"by"`
	At     time.Time    `json:"at"`
	Reason string       `json:"reason"`
}

// LinkReader reads links.
type LinkReader interface {
	GoodsLink(k identity.Key) (GoodsLink, error)
	LinkedInto(k identity.Key) ([]identity.Key, error)
}

// LinkWriter writes them.
type LinkWriter interface {
	PutGoodsLink(GoodsLink) error
}

// LinkGoods links goods from into goods to.
func (s *Service) LinkGoods(ctx context.Context, by access.Principal, from, to identity.Key, reason string) (GoodsLink, error) {
	return s.link(ctx, by, from, to, reason, true)
}

// UnlinkGoods undoes the link of goods from.
func (s *Service) UnlinkGoods(ctx context.Context, by access.Principal, from identity.Key, reason string) (GoodsLink, error) {
	return s.link(ctx, by, from, identity.Key{}, reason, false)
}

func (s *Service) link(ctx context.Context, by access.Principal, from, to identity.Key, reason string, active bool) (GoodsLink, error) {
	if err := by.Require(access.ActLinkGoods); err != nil {
		return GoodsLink{}, err
	}
	if err := declaration.CheckTextMax("reason", reason, true, maxReasonText); err != nil {
		return GoodsLink{}, err
	}
	if active && from == to {
		return GoodsLink{}, Invalid("to", "goods cannot be linked into themselves")
	}
	now := s.clock.Now()
	kind := audit.GoodsLinked
	if !active {
		kind = audit.GoodsUnlinked
	}
	var out GoodsLink
	err := s.w.write(ctx, by, kind, now, func(tx Tx, c *Change) error {
		prev, err := tx.GoodsLink(from)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			if !active {
				return NotFound("goods %s is not linked", from)
			}
		case err != nil:
			return err
		case !active && !prev.Active:
			return NotFound("goods %s is not linked", from)
		case !active:
			to = prev.To
		}
		if active {
			if err := linkable(tx, from, to); err != nil {
				return err
			}
		}
		out = GoodsLink{From: from, To: to, Active: active, By: by.Name, At: now, Reason: strings.TrimSpace(reason)}
		c.Subjects = []string{"goods:" + from.String(), "goods:" + to.String()}
		return tx.PutGoodsLink(out)
	})
	return out, err
}

// linkable refuses a link of from into to unless both are known goods and
// the link stays one hop: a goods others are linked into is not linked on,
// and goods linked elsewhere do not take links.
func linkable(tx ReadTx, from, to identity.Key) error {
	for _, k := range []identity.Key{from, to} {
		if _, err := tx.GoodsState(k); errors.Is(err, fault.ErrNotFound) {
			return NotFound("no goods %s", k)
		} else if err != nil {
			return err
		}
	}
	into, err := tx.LinkedInto(from)
	if err != nil {
		return err
	}
	if len(into) > 0 {
		return Conflict("from", "goods %s has goods linked into it: unlink them first", from)
	}
	l, err := tx.GoodsLink(to)
	switch {
	case err == nil && l.Active:
		return Conflict("to", "goods %s is itself linked into %s: link into that one", to, l.To)
	case err != nil && !errors.Is(err, fault.ErrNotFound):
		return err
	}
	return nil
}

// resolveGoods follows a goods' active link, if any: the key its lots are
// decided under, and the subjects the decision then depends on.
func resolveGoods(tx LinkReader, k identity.Keys) (identity.Keys, []risk.Subject, error) {
	l, err := tx.GoodsLink(k.Goods)
	switch {
	case errors.Is(err, fault.ErrNotFound) || err == nil && !l.Active:
		return k, nil, nil
	case err != nil:
		return k, nil, fmt.Errorf("link of %s: %w", k.Goods, err)
	}
	k.Goods = l.To
	return k, []risk.Subject{Subject{SubjectGoods, l.To}.InputSubject()}, nil
}

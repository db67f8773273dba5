package store

import (
	"context"
	"time"
)

// Settle waits until badger's compactors have caught up with what was
// written: no level of the LSM tree over its target (badger's own
// compaction score). A bulk load or a restore writes faster than the
// compactors keep up with, and a server opened on such a store spends its
// first minutes compacting while it serves; `ktcn compact` settles a
// stopped store first. progress, when set, hears how many levels still
// need compaction, about once a second. It returns ctx's error if ctx
// ends first.
func (d *DB) Settle(ctx context.Context, progress func(levels int)) error {
	if err := d.enter(ctx); err != nil {
		return err
	}
	defer d.leave()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		pending := d.levelsOverTarget()
		if pending == 0 {
			return nil
		}
		if progress != nil {
			progress(pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// levelsOverTarget is how many LSM levels badger would compact now.
func (d *DB) levelsOverTarget() int {
	n := 0
	for _, l := range d.db.Levels() {
		if l.Score >= 1 {
			n++
		}
	}
	return n
}

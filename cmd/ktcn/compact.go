package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// runCompact waits, on a stopped store, until badger's compaction has
// caught up with what was written (store.Settle): after `fixtures generate
// -bulk` or a restore, so that the server started next does not spend its
// first minutes compacting while it serves (and a benchmark measures the
// store, not its debt).
func runCompact(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return withAppFlags(ctx, "compact", args, getenv, stderr, nil, func(a *app) error {
		started := time.Now()
		last := time.Time{}
		err := a.store.Settle(ctx, func(levels int) {
			if isTerminal(stderr) && time.Since(last) >= 5*time.Second {
				last = time.Now()
				fmt.Fprintf(stderr, "compact: %d levels over their target after %s\n", levels, time.Since(started).Round(time.Second))
			}
		})
		if err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		fmt.Fprintf(stdout, "compaction caught up in %s\n", time.Since(started).Round(time.Millisecond))
		return nil
	})
}

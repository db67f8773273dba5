package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// badgerLogger routes badger's log lines through zerolog. Badger reports
// routine work (tables opened, compactions, flushes) at Info, which is
// noise in our logs, so it goes to debug; badger's Debug writes lines for
// every commit, so it goes to trace lest it drown our own debug lines.
// Warning and Error keep their levels. One Info line is not routine: a
// compaction that took over two seconds (slowCompaction).
type badgerLogger struct {
	log zerolog.Logger
}

func (l badgerLogger) Errorf(f string, a ...any)   { emit(l.log.Error(), f, a) }
func (l badgerLogger) Warningf(f string, a ...any) { emit(l.log.Warn(), f, a) }
func (l badgerLogger) Debugf(f string, a ...any)   { emit(l.log.Trace(), f, a) }

func (l badgerLogger) Infof(f string, a ...any) {
	if f == slowCompactionFormat && slowCompaction(l.log.Info(), a) {
		return
	}
	emit(l.log.Debug(), f, a)
}

// slowCompactionFormat is badger's line for a compaction that took over
// two seconds (badger v4 levels.go, runCompactDef; it logs no other
// compaction). On two cores such a compaction is what stalls decisions:
// it rewrites every table of the level below that its input overlaps,
// in up to five subcompactions each compressing on 2 × NumCPU
// goroutines, and the single commit path waits behind them for the
// processors
// (docs/performance.md, "Compaction bursts"). So it is logged at info,
// with its levels, tables and duration as fields, for an operator (and
// the scale harness) to put beside a slow minute. TestSlowCompactionFormat
// checks the text against the badger in go.mod; should badger reword it,
// the line falls back to debug like the rest.
const slowCompactionFormat = "[%d]%s LOG Compact %d->%d (%d, %d -> %d tables with %d splits)." +
	" [%s] -> [%s], took %v\n, deleted %d bytes"

// SlowCompactionMessage is the info line's message (the scale harness
// looks for it in a server's log).
const SlowCompactionMessage = "store: a compaction took over 2 s; decisions compete with it for the processors"

// slowCompaction writes badger's slow-compaction line as fields on e and
// reports whether its arguments had the types the format gives them.
func slowCompaction(e *zerolog.Event, a []any) bool {
	if len(a) != 12 {
		return false
	}
	from, ok1 := a[2].(int)
	to, ok2 := a[3].(int)
	top, ok3 := a[4].(int)
	bot, ok4 := a[5].(int)
	out, ok5 := a[6].(int)
	splits, ok6 := a[7].(int)
	took, ok7 := a[10].(time.Duration)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return false
	}
	e.Int("from_level", from).Int("to_level", to).Int("tables_in", top+bot).Int("tables_out", out).
		Int("splits", splits).Int64("took_ms", took.Milliseconds()).Msg(SlowCompactionMessage)
	return true
}

// emit formats only when the level is enabled, and trims the newline
// badger puts at the end of most messages.
func emit(e *zerolog.Event, f string, a []any) {
	if !e.Enabled() {
		return
	}
	e.Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

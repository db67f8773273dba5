package store

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// badgerLogger routes badger's log lines through zerolog. Badger reports
// routine work (tables opened, compactions, flushes) at Info, which is
// noise in our logs, so it goes to debug; badger's Debug writes lines for
// every commit, so it goes to trace lest it drown our own debug lines.
// Warning and Error keep their levels.
type badgerLogger struct {
	log zerolog.Logger
}

func (l badgerLogger) Errorf(f string, a ...any)   { emit(l.log.Error(), f, a) }
func (l badgerLogger) Warningf(f string, a ...any) { emit(l.log.Warn(), f, a) }
func (l badgerLogger) Infof(f string, a ...any)    { emit(l.log.Debug(), f, a) }
func (l badgerLogger) Debugf(f string, a ...any)   { emit(l.log.Trace(), f, a) }

// emit formats only when the level is enabled, and trims the newline
// badger puts at the end of most messages.
func emit(e *zerolog.Event, f string, a []any) {
	if !e.Enabled() {
		return
	}
	e.Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

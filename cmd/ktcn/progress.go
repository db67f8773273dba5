package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// progress shows a long command's advance (verify audit, fixtures
// generate, backup, restore) as one line on stderr, rewritten in place at
// most every progressEvery. It draws only when its writer is a terminal:
// a script or a log file gets the command's output and nothing else.
type progress struct {
	mu    sync.Mutex
	w     io.Writer // nil: not a terminal, draw nothing
	what  string    // "verify audit"
	unit  string    // "entries"; "bytes" draws sizes
	total int64     // 0: unknown, no share or ETA
	now   func() time.Time
	start time.Time
	drawn time.Time // the last draw; zero before the first
	done  int64
	// The rate counts from the first Set, not from start: a command may
	// work a while before it counts (fixtures generate calibrates first),
	// and that wait would make the rate low and the ETA absurd.
	t0 time.Time
	d0 int64
}

const progressEvery = 200 * time.Millisecond

// newProgress draws on w only when w is a terminal.
func newProgress(w io.Writer, what, unit string, total int64) *progress {
	if !isTerminal(w) {
		w = nil
	}
	return newProgressTo(w, what, unit, total, time.Now)
}

// newProgressTo draws on w whatever it is (nil: nowhere); tests use it.
func newProgressTo(w io.Writer, what, unit string, total int64, now func() time.Time) *progress {
	return &progress{w: w, what: what, unit: unit, total: total, now: now, start: now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Set records how much is done and redraws if the last draw is old enough.
// Safe for concurrent use.
func (p *progress) Set(done int64) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	if p.t0.IsZero() {
		p.t0, p.d0 = t, p.done
	}
	p.done = done
	// The first draw waits progressEvery too: a quick command shows none.
	last := p.drawn
	if last.IsZero() {
		last = p.start
	}
	if t.Sub(last) >= progressEvery {
		p.draw(t)
	}
}

// SetTotal sets the total once it is known (0: unknown).
func (p *progress) SetTotal(total int64) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	p.total = total
	p.mu.Unlock()
}

// Add is Set(done + n).
func (p *progress) Add(n int64) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	done := p.done + n
	p.mu.Unlock()
	p.Set(done)
}

// Done draws the final figures and ends the line, if anything was drawn,
// so the command's own output starts on a fresh line.
func (p *progress) Done() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn.IsZero() {
		return // too quick to have shown anything: show nothing
	}
	p.draw(p.now())
	fmt.Fprintln(p.w)
}

// Writer counts what passes through it as done (for bytes).
func (p *progress) Writer(w io.Writer) io.Writer {
	if p == nil || p.w == nil {
		return w
	}
	return progressWriter{w, p}
}

// Reader counts what is read through it as done (for bytes).
func (p *progress) Reader(r io.Reader) io.Reader {
	if p == nil || p.w == nil {
		return r
	}
	return progressReader{r, p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.Add(int64(n))
	return n, err
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.Add(int64(n))
	return n, err
}

// draw writes the line: "\r", the figures, then erase to the line's end.
func (p *progress) draw(t time.Time) {
	p.drawn = t
	elapsed := t.Sub(p.start)
	var b strings.Builder
	fmt.Fprintf(&b, "\r%s: %s", p.what, p.number(p.done))
	if p.total > 0 {
		fmt.Fprintf(&b, " of %s", p.number(p.total))
	}
	if p.unit != "bytes" {
		b.WriteString(" " + p.unit)
	}
	if p.total > 0 {
		fmt.Fprintf(&b, " (%d%%)", min(100, p.done*100/p.total))
	}
	if s := t.Sub(p.t0).Seconds(); s > 0 {
		rate := float64(p.done-p.d0) / s
		fmt.Fprintf(&b, ", %s/s", p.number(int64(rate)))
		if p.total > 0 && rate > 0 && p.done < p.total {
			eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
			fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
		}
	}
	fmt.Fprintf(&b, ", %s\x1b[K", elapsed.Round(100*time.Millisecond))
	io.WriteString(p.w, b.String())
}

// number is n as drawn: "1.5 MiB" for bytes, "12,345" otherwise.
func (p *progress) number(n int64) string {
	if p.unit == "bytes" {
		const unit = 1024
		if n < unit {
			return strconv.FormatInt(n, 10) + " B"
		}
		div, exp := int64(unit), 0
		for m := n / unit; m >= unit; m /= unit {
			div *= unit
			exp++
		}
		return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
	}
	return groupThousands(n)
}

// groupThousands writes 124000 as "124,000".
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

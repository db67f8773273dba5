package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A script or a log file (any writer that is not a terminal) gets no
// progress at all: the command's output stays what it was.
func TestProgressSilentOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "verify audit", "entries", 1000)
	for i := int64(1); i <= 1000; i++ {
		p.Set(i)
	}
	var sink bytes.Buffer
	if _, err := p.Writer(&sink).Write([]byte("data")); err != nil || sink.String() != "data" {
		t.Fatalf("Writer off a terminal: %q, %v", sink.String(), err)
	}
	p.Done()
	if buf.Len() != 0 {
		t.Fatalf("progress written to a non-terminal: %q", buf.String())
	}
}

// On a terminal the line shows done, total, share, rate and ETA, is
// redrawn in place at most every progressEvery, and ends with a newline.
func TestProgressOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	p := newProgressTo(&buf, "verify audit", "entries", 124_000, now)

	p.Set(0) // counting starts: the rate is measured from here
	clock = clock.Add(10 * time.Second)
	p.Set(62_000)
	want := "\rverify audit: 62,000 of 124,000 entries (50%), 6,200/s, ETA 10s, 10s\x1b[K"
	if buf.String() != want {
		t.Fatalf("drawn %q, want %q", buf.String(), want)
	}
	p.Set(62_001) // within progressEvery of the last draw: not redrawn
	if buf.String() != want {
		t.Fatalf("redrawn too soon: %q", buf.String())
	}
	clock = clock.Add(10 * time.Second)
	p.Set(124_000)
	p.Done()
	out := buf.String()
	if !strings.HasSuffix(out, "\rverify audit: 124,000 of 124,000 entries (100%), 6,200/s, 20s\x1b[K\n") {
		t.Fatalf("final line: %q", out)
	}

	buf.Reset()
	clock = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	b := newProgressTo(&buf, "backup", "bytes", 0, now)
	b.Set(0)
	clock = clock.Add(2 * time.Second)
	var sink bytes.Buffer
	if _, err := b.Writer(&sink).Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	b.Done()
	if want := "\rbackup: 3.0 MiB, 1.5 MiB/s, 2s\x1b[K"; !strings.Contains(buf.String(), want) {
		t.Fatalf("bytes drawn %q, want %q", buf.String(), want)
	}
	if sink.Len() != 3<<20 {
		t.Fatalf("Writer passed %d bytes on", sink.Len())
	}
}

// A command quicker than one draw interval shows nothing, not even a
// newline.
func TestProgressQuickShowsNothing(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Now()
	p := newProgressTo(&buf, "restore", "bytes", 10, func() time.Time { return clock })
	p.Set(10)
	p.Done()
	if buf.Len() != 0 {
		t.Fatalf("quick run drew %q", buf.String())
	}
}

package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// The memtables' write-ahead logs are files badger writes through a
// shared memory mapping (NNNNN.mem), syncing them with msync at every
// commit. Since Linux 6.16 ext4 caches regular files in large folios, and
// a page fault on a mapping takes a folio as large as the file's readahead
// window allows (up to 2 MiB with the 8 MiB window of this machine's
// disk). Writeback writes a dirty folio whole, so every commit's msync
// wrote the whole folio under the log's tail — about 1 MiB for a batch of
// 36 KiB in a standalone test, 570 KiB a sync measured in ktcn serve
// (/proc/pid/io at 1,000 decisions/s: 285 MB/s of writes and bursts of
// 1.4 GB/s for 9 MB/s of log). MADV_RANDOM on the mapping turns readahead
// off for its faults, so each fault maps one page and a sync writes the
// pages the batch touched: the same test writes 36 KiB a sync.
//
// badger does not expose its mappings, so walAdvice finds them in
// /proc/self/maps: the logs open at start, and each new log when its file
// appears (badger numbers them in sequence). A log is advised within a
// tick of its creation; the pages written before that keep their large
// folios, which costs until the log's tail has moved past them. Advice
// that fails costs only speed, so it is logged, not returned.

// walAdviceTick is how often the next log's file is looked for: a stat a
// tick, about 7 s of logs at 1,000 decisions/s between two new ones.
const walAdviceTick = 10 * time.Millisecond

type walAdvice struct {
	dir  string
	log  zerolog.Logger
	next int // the number of the next log file badger will create
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// startWALAdvice advises the logs open in dir and watches for new ones
// until the returned stop is called. dir must be the store's directory.
func startWALAdvice(dir string, log zerolog.Logger) (stop func()) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		log.Warn().Err(err).Msg("store: write-ahead log advice off")
		return func() {}
	}
	w := &walAdvice{dir: dir, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Warn().Err(err).Msg("store: write-ahead log advice off")
		return func() {}
	}
	for _, e := range entries {
		if n, ok := memFileNumber(e.Name()); ok && n >= w.next {
			w.next = n + 1
		}
	}
	w.advise("")
	go w.watch()
	return func() {
		w.once.Do(func() { close(w.stop) })
		<-w.done
	}
}

func (w *walAdvice) watch() {
	defer close(w.done)
	t := time.NewTicker(walAdviceTick)
	defer t.Stop()
	waited := 0
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		for {
			name := filepath.Join(w.dir, fmt.Sprintf("%05d.mem", w.next))
			if _, err := os.Stat(name); err != nil {
				break
			}
			// badger creates the file, sizes it, then maps it: a file
			// seen between the two is looked for again at the next
			// tick, until it is mapped (or a second has passed).
			if !w.advise(name) && waited < int(time.Second/walAdviceTick) {
				waited++
				break
			}
			waited = 0
			w.next++
		}
	}
}

// advise sets MADV_RANDOM on every mapping of a log in the store's
// directory and reports whether one of them maps want. Advising a
// mapping twice is harmless, so there is no record of what was advised.
func (w *walAdvice) advise(want string) bool {
	raw, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		w.log.Warn().Err(err).Msg("store: write-ahead log advice")
		return false
	}
	n, found := 0, false
	for _, m := range logMappings(raw, w.dir) {
		// The address range comes from the kernel's own list of this
		// process's mappings, so it is passed as numbers, not as memory
		// this program would touch.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_RANDOM); errno != 0 {
			// ENOMEM: badger unmapped the log (flushed) since maps was
			// read; nothing is left to advise.
			ev := w.log.Warn()
			if errno == unix.ENOMEM {
				ev = w.log.Debug()
			}
			ev.Err(errno).Str("file", m.path).Msg("store: write-ahead log advice")
			continue
		}
		n++
		found = found || m.path == want
	}
	w.log.Debug().Int("logs", n).Bool("new_log_mapped", found).Msg("store: write-ahead logs advised (MADV_RANDOM)")
	return found
}

type mapping struct {
	start, end uintptr
	path       string
}

// logMappings returns the mappings of .mem files directly in dir, from
// the text of /proc/self/maps ("start-end perms offset dev inode path").
func logMappings(maps []byte, dir string) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := strings.Join(fields[5:], " ")
		if filepath.Dir(path) != dir {
			continue
		}
		if _, ok := memFileNumber(filepath.Base(path)); !ok {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{start: uintptr(start), end: uintptr(end), path: path})
	}
	return out
}

// memFileNumber is the number of a badger write-ahead log's file name.
func memFileNumber(name string) (int, bool) {
	num, ok := strings.CutSuffix(name, ".mem")
	if !ok || num == "" {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

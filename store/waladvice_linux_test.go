package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogMappings(t *testing.T) {
	dir := "/data/ktcn"
	maps := strings.Join([]string{
		"7f0000000000-7f0008000000 rw-s 00000000 fd:00 1234                       /data/ktcn/00009.mem",
		"7f0010000000-7f0010400000 r--s 00000000 fd:00 1235                       /data/ktcn/000012.sst",
		"7f0020000000-7f0028000000 rw-s 00000000 fd:00 1236                       /data/other/00010.mem",
		"7f0030000000-7f0038000000 rw-s 00000000 fd:00 1237                       /data/ktcn/00010.mem (deleted)",
		"7f0040000000-7f0048000000 rw-s 00000000 fd:00 1238                       /data/ktcn/with space/00011.mem",
		"7f0050000000-7f0058000000 rw-s 00000000 fd:00 1239                       /data/ktcn/x.mem",
		"zz-7f0058000000 rw-s 00000000 fd:00 1240                                 /data/ktcn/00012.mem",
		"7f0060000000-7f0068000000 rw-p 00000000 00:00 0",
		"7f0070000000-7f0078000000 rw-s 00000000 fd:00 1241                       /data/ktcn/00013.mem",
	}, "\n")
	got := logMappings([]byte(maps), dir)
	want := []mapping{
		{start: 0x7f0000000000, end: 0x7f0008000000, path: "/data/ktcn/00009.mem"},
		{start: 0x7f0070000000, end: 0x7f0078000000, path: "/data/ktcn/00013.mem"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("logMappings:\n got %v\nwant %v", got, want)
	}
}

func TestMemFileNumber(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"00009.mem", 9, true},
		{"123456.mem", 123456, true},
		{".mem", 0, false},
		{"00009.sst", 0, false},
		{"-1.mem", 0, false},
		{"a1.mem", 0, false},
		{"00009.mem.tmp", 0, false},
	} {
		n, ok := memFileNumber(tc.name)
		if n != tc.n || ok != tc.ok {
			t.Errorf("memFileNumber(%q) = %d, %v; want %d, %v", tc.name, n, ok, tc.n, tc.ok)
		}
	}
}

// TestWriteAheadLogsAdvised writes through several memtables and checks
// that every log mapped in the store's directory carries the random-read
// advice ("rr" in its smaps VmFlags): the one open at start and each
// badger creates later.
func TestWriteAheadLogsAdvised(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(Options{Dir: dir, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	val := make([]byte, 16<<10)
	seen := map[string]bool{}
	for i := range 400 { // 6.4 MiB through 1 MiB memtables
		if err := PutRaw(d, fmt.Appendf(nil, "\xfe%08d", i), val); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			waitAdvised(t, dir, seen)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("saw %d write-ahead logs (%v); want the writes to pass through at least 3", len(seen), seen)
	}
}

// waitAdvised waits up to 5 s for every mapping of a log in dir to carry
// the advice, adding the logs it sees to seen.
func waitAdvised(t *testing.T, dir string, seen map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		unadvised := ""
		for path, flags := range logFlags(t, dir) {
			seen[path] = true
			if !strings.Contains(" "+flags+" ", " rr ") && unadvised == "" {
				unadvised = path + " (" + flags + ")"
			}
		}
		if unadvised == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("write-ahead log %s mapped without MADV_RANDOM after 5 s", unadvised)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logFlags maps each log mapped in dir to its VmFlags in /proc/self/smaps.
func logFlags(t *testing.T, dir string) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	current := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			if current != "" {
				out[current] = strings.TrimSpace(flags)
			}
			current = ""
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 6 && strings.Contains(fields[0], "-") {
			path := strings.Join(fields[5:], " ")
			if _, ok := memFileNumber(filepath.Base(path)); ok && filepath.Dir(path) == dir {
				current = path
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

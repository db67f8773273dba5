package store

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// badger's line for a slow compaction comes out at info with its figures
// as fields; every other Info line of badger stays at debug, and so does
// that one if its arguments are not what the format says.
func TestSlowCompactionLogged(t *testing.T) {
	args := []any{2, " [E]", 0, 6, 5, 27, 35, 5, "00077 00078", "00082 00087", 11482 * time.Millisecond, int64(1645422)}
	otherTypes := slices.Clone(args)
	otherTypes[2] = "0"
	for _, c := range []struct {
		name      string
		format    string
		args      []any
		wantLevel string
		wantMsg   string
	}{
		{"slow compaction", slowCompactionFormat, args, "info", SlowCompactionMessage},
		{"another line", "All %d tables opened in %s", []any{29, "9ms"}, "debug", "All 29 tables opened in 9ms"},
		{"the format, other arguments", slowCompactionFormat, otherTypes, "debug", "LOG Compact"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			badgerLogger{log: zerolog.New(&buf).Level(zerolog.DebugLevel)}.Infof(c.format, c.args...)
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %q", err, buf.String())
			}
			if line["level"] != c.wantLevel || !strings.Contains(line["message"].(string), c.wantMsg) {
				t.Fatalf("logged %v, want level %s and a message with %q", line, c.wantLevel, c.wantMsg)
			}
			if c.wantLevel != "info" {
				return
			}
			want := map[string]float64{"from_level": 0, "to_level": 6, "tables_in": 32, "tables_out": 35, "splits": 5, "took_ms": 11482}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v (%v)", k, line[k], v, line)
				}
			}
		})
	}
}

// The format is badger's own text: if the badger in go.mod words its
// slow-compaction line otherwise, the line would quietly fall back to
// debug, so this reads badger's source from the module cache and finds it.
func TestSlowCompactionFormat(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for _, line := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/dgraph-io/badger/v4" {
			version = f[1]
		}
	}
	if version == "" {
		t.Fatal("go.mod requires no github.com/dgraph-io/badger/v4")
	}
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatal(err)
			}
			gopath = filepath.Join(home, "go")
		}
		cache = filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "pkg", "mod")
	}
	src, err := os.ReadFile(filepath.Join(cache, "github.com", "dgraph-io", "badger", "v4@"+version, "levels.go"))
	if err != nil {
		t.Skipf("badger's source is not in the module cache here (%v); set GOMODCACHE", err)
	}
	first, second, _ := strings.Cut(slowCompactionFormat, " [%s]")
	for _, part := range []string{inSource(first), inSource(" [%s]" + second)} {
		if !bytes.Contains(src, []byte(part)) {
			t.Errorf("badger %s's levels.go has no %s: it logs slow compactions in other words now", version, part)
		}
	}
}

// inSource is s as it appears in Go source between double quotes.
func inSource(s string) string {
	return strings.ReplaceAll(s, "\n", `\n`)
}

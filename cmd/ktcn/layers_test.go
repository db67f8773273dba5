package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ktcn/ktcn"

// TestImportsPointDown keeps the packages' layering (docs/architecture.md)
// over every package's full dependency set, as go list reports it:
// cmd → api → inspection(/…) → risk, cmd → store → inspection; the domain
// sub-packages are leaves the root domain imports, never the other way;
// nothing imports cmd; badger is the store's alone and echo the api's.
func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		deps[strings.TrimPrefix(f[0], module+"/")] = f[1:]
	}
	if len(deps) < 10 {
		t.Fatalf("go list found %d packages: %v", len(deps), deps)
	}
	own := func(p string) string { return strings.TrimPrefix(p, module+"/") }
	forbid := func(pkg string, bad func(dep string) bool, why string) {
		for _, d := range deps[pkg] {
			if bad(d) {
				t.Errorf("%s depends on %s: %s", pkg, own(d), why)
			}
		}
	}
	is := func(prefixes ...string) func(string) bool {
		return func(d string) bool {
			for _, p := range prefixes {
				if d == module+"/"+p || strings.HasPrefix(d, module+"/"+p+"/") || d == p || strings.HasPrefix(d, p+"/") {
					return true
				}
			}
			return false
		}
	}
	for pkg := range deps {
		switch {
		case pkg == "risk":
			forbid(pkg, func(d string) bool { return strings.HasPrefix(d, module+"/") }, "risk is pure scoring")
		case pkg == "inspection":
			forbid(pkg, is("store", "api", "cmd", "fixtures", "inspection/backtest"), "the domain knows no storage, transport or wiring, nor the replay above it")
		case pkg == "inspection/backtest":
			// The one sub-package above the root: it replays the root's own
			// rules (Evaluate, resemblance) on history read through the
			// root's ReadTx, so it imports the root, and the root never
			// imports it.
			forbid(pkg, is("store", "api", "cmd", "fixtures"), "the domain knows no storage, transport or wiring")
		case strings.HasPrefix(pkg, "inspection/"):
			forbid(pkg, is("store", "api", "cmd", "fixtures"), "the domain knows no storage, transport or wiring")
			forbid(pkg, func(d string) bool { return d == module+"/inspection" }, "sub-packages are leaves the root imports")
		case pkg == "store":
			forbid(pkg, is("api", "cmd", "fixtures"), "the store serves the domain only")
		case pkg == "api":
			forbid(pkg, is("store", "cmd", "fixtures", "github.com/dgraph-io/badger"), "the api reaches storage through the domain")
		case pkg == "fixtures":
			forbid(pkg, is("store", "api", "cmd"), "fixtures are reference data and history, loaded through the domain")
		}
		if pkg != "store" && !strings.HasPrefix(pkg, "cmd") {
			forbid(pkg, is("github.com/dgraph-io/badger"), "badger is the store's alone")
		}
		if pkg != "api" && !strings.HasPrefix(pkg, "cmd") {
			forbid(pkg, is("github.com/labstack/echo"), "echo is the api's alone")
		}
		if !strings.HasPrefix(pkg, "cmd") {
			forbid(pkg, is("cmd"), "nothing imports the wiring")
		}
	}
}

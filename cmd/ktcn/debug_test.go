package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
)

// The profiles have no authentication: only loopback may serve them.
func TestCheckDebugAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"": true, "127.0.0.1:6060": true, "[::1]:6060": true, "localhost:0": true,
		"0.0.0.0:6060": false, ":6060": false, "10.0.0.1:6060": false, "example.com:6060": false, "127.0.0.1": false,
	} {
		if err := checkDebugAddr(addr, &Config{}); (err == nil) != ok {
			t.Errorf("checkDebugAddr(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

func TestDebugListenerServesPprof(t *testing.T) {
	stop, err := startDebug("", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop() // off: nothing to stop
	ts := httptest.NewServer(debugMux())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("heap profile: %d, %d bytes", resp.StatusCode, len(body))
	}
}

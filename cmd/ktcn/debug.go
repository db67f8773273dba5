package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/rs/zerolog"
)

// Sampling of the block and mutex profiles while the debug listener is on:
// a blocking event is recorded per 10 µs spent blocked on average, and one
// mutex contention in 10. Both cost a little on every blocking call, which
// is why they stay at zero (off) unless someone asked for profiles.
const (
	debugBlockRateNs     = 10_000
	debugMutexFraction   = 10
	debugShutdownTimeout = 5 * time.Second
)

// debugMux is net/http/pprof on a mux of its own: importing the package
// also registers it on http.DefaultServeMux, which ktcn never serves.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// startDebug serves the profiles on addr (checked loopback by
// checkDebugAddr) and turns block and mutex profiling on, until stop. An
// empty addr starts nothing. The listener is separate from the API's, so
// its long requests (a 30 s CPU profile) are outside the API's timeouts,
// connection limit and authentication, and the API never serves them.
func startDebug(addr string, log zerolog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener %s: %w", addr, err)
	}
	runtime.SetBlockProfileRate(debugBlockRateNs)
	runtime.SetMutexProfileFraction(debugMutexFraction)
	srv := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("debug listener")
		}
	}()
	log.Warn().Str("debug_addr", ln.Addr().String()).Msg("profiling on: net/http/pprof served on the debug address, block and mutex profiles sampled")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), debugShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	}, nil
}

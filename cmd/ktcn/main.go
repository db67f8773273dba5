// Command ktcn is the specialized-inspection scheduling service. It owns the
// wiring only: commands, configuration, logger, store, service, cron and
// HTTP (see app.go); commands act as the system principal, or as the
// operator for keys. main itself only hands the process to Run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

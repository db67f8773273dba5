//go:build !linux

package store

import "github.com/rs/zerolog"

// startWALAdvice does nothing here: the write amplification it avoids
// (waladvice_linux.go) is Linux's large folios.
func startWALAdvice(string, zerolog.Logger) (stop func()) { return func() {} }

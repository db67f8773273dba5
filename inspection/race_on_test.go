//go:build race

package inspection_test

// raceDetector: the race detector slows the store's group commit about
// tenfold, so load tests size themselves down under it.
const raceDetector = true

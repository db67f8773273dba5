//go:build !race

package inspection_test

const raceDetector = false

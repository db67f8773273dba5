package inspection_test

import (
	"bytes"
	"errors"
	"sort"

	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/quota"
)

// testKeys is the quota master secret of every test service.
var testKeys = quota.MasterSecret(bytes.Repeat([]byte{0x5a}, 32))

func asError(err error, target **fault.Error) bool { return errors.As(err, target) }

func sortSlice[T any](s []T, less func(a, b T) bool) {
	sort.Slice(s, func(i, j int) bool { return less(s[i], s[j]) })
}

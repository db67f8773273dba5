package api_test

import (
	"bytes"

	"github.com/ktcn/ktcn/inspection/quota"
)

// testKeys is the quota master secret of every test service.
var testKeys = quota.MasterSecret(bytes.Repeat([]byte{0x5a}, 32))

package feed_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"pgregory.net/rapid"

	"github.com/ktcn/ktcn/inspection/feed"
)

// The Standard Webhooks library is an implementation of the spec that ktcn
// did not write: what it signs and accepts is what an NSW receiver will.

// The specification's published example (standardwebhooks.com, "Signature
// scheme"): its expected signature is checked against the library too, so a
// typo here cannot make both sides agree on a wrong value.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID  = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func libWebhook(t interface {
	Helper()
	Fatalf(string, ...any)
}, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("library NewWebhook(%q): %v", secret, err)
	}
	return wh
}

func headers(msgID string, at time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, msgID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

func TestSignMatchesLibraryOnSpecExample(t *testing.T) {
	at := time.Unix(specTS, 0)
	lib, err := libWebhook(t, specSecret).Sign(specMsgID, at, []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	if lib != specSig {
		t.Fatalf("library signs the spec example as %q, the spec says %q", lib, specSig)
	}
	for _, tc := range []struct {
		name, secret string
	}{
		{"whsec prefix", specSecret},
		// The prefix is optional for the library; ktcn must not depend on it.
		{"bare base64", strings.TrimPrefix(specSecret, feed.SecretPrefix)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := feed.Sign(tc.secret, specMsgID, at, []byte(specBody))
			if err != nil {
				t.Fatal(err)
			}
			if got != specSig {
				t.Fatalf("feed.Sign = %q, want %q", got, specSig)
			}
			// The timestamp is in the past: only the signature is checked here.
			if err := libWebhook(t, tc.secret).VerifyIgnoringTimestamp([]byte(specBody), headers(specMsgID, at, got)); err != nil {
				t.Fatalf("library rejects ktcn's signature: %v", err)
			}
		})
	}
}

// TestSignVerifiesWithLibrary: any secret, id and body ktcn signs, the
// library verifies (and signs identically).
func TestSignVerifiesWithLibrary(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		key := rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(rt, "key")
		secret := base64.StdEncoding.EncodeToString(key)
		if rapid.Bool().Draw(rt, "prefixed") {
			secret = feed.SecretPrefix + secret
		}
		msgID := "evt_" + rapid.StringMatching(`[A-Za-z0-9_-]{1,40}`).Draw(rt, "id")
		body := rapid.SliceOfN(rapid.Byte(), 0, 512).Draw(rt, "body")
		at := time.Now().Add(time.Duration(rapid.IntRange(-240, 240).Draw(rt, "skew_s")) * time.Second)

		sig, err := feed.Sign(secret, msgID, at, body)
		if err != nil {
			rt.Fatal(err)
		}
		wh := libWebhook(rt, secret)
		lib, err := wh.Sign(msgID, at, body)
		if err != nil {
			rt.Fatal(err)
		}
		if sig != lib {
			rt.Fatalf("feed.Sign = %q, library %q", sig, lib)
		}
		if err := wh.Verify(body, headers(msgID, at, sig)); err != nil {
			rt.Fatalf("library rejects ktcn's signature: %v", err)
		}
	})
}

// TestSignatureHeaderRotation: during a rotation the header carries the new
// and the old secret's signatures; a receiver holding either one accepts.
func TestSignatureHeaderRotation(t *testing.T) {
	const (
		oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		newSecret = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24h"
		other     = "whsec_dW5yZWxhdGVkIHNlY3JldCBrZXkgYnl0ZXM="
		msgID     = "evt_000042"
	)
	body := []byte(`{"type":"decision.made","timestamp":"2026-01-02T03:04:05Z","data":{"seq":42}}`)
	at := time.Now()
	header, err := feed.SignatureHeader([]string{newSecret, oldSecret}, msgID, at, body)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(header)); n != 2 {
		t.Fatalf("header %q holds %d signatures, want 2", header, n)
	}
	for _, tc := range []struct {
		name     string
		verifier string
		ok       bool
	}{
		{"receiver still on the old secret", oldSecret, true},
		{"receiver already on the new secret", newSecret, true},
		{"receiver with neither", other, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := libWebhook(t, tc.verifier).Verify(body, headers(msgID, at, header))
			if tc.ok && err != nil {
				t.Fatalf("library rejects: %v", err)
			}
			if !tc.ok && !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
				t.Fatalf("library: %v, want ErrNoMatchingSignature", err)
			}
		})
	}
	if _, err := feed.SignatureHeader(nil, msgID, at, body); err == nil {
		t.Fatal("SignatureHeader with no secret: no error")
	}
}

// TestLibraryRejects: what the receiver relies on the library to refuse.
func TestLibraryRejects(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		wrong  = "whsec_dW5yZWxhdGVkIHNlY3JldCBrZXkgYnl0ZXM="
		msgID  = "evt_000007"
	)
	body := []byte(`{"type":"result.recorded","timestamp":"2026-01-02T03:04:05Z","data":{"seq":7}}`)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		signWith string
		at       time.Time
		send     []byte
		id       string
		want     error // nil: accepted
	}{
		{"as signed", secret, now, body, msgID, nil},
		{"within tolerance, past", secret, now.Add(-4 * time.Minute), body, msgID, nil},
		{"within tolerance, future", secret, now.Add(4 * time.Minute), body, msgID, nil},
		{"tampered body", secret, now, []byte(strings.Replace(string(body), `"seq":7`, `"seq":8`, 1)), msgID, standardwebhooks.ErrNoMatchingSignature},
		{"other webhook-id", secret, now, body, "evt_000008", standardwebhooks.ErrNoMatchingSignature},
		{"wrong secret", wrong, now, body, msgID, standardwebhooks.ErrNoMatchingSignature},
		{"stale timestamp", secret, now.Add(-6 * time.Minute), body, msgID, standardwebhooks.ErrMessageTooOld},
		{"future timestamp", secret, now.Add(6 * time.Minute), body, msgID, standardwebhooks.ErrMessageTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := feed.SignatureHeader([]string{tc.signWith}, msgID, tc.at, body)
			if err != nil {
				t.Fatal(err)
			}
			err = libWebhook(t, secret).Verify(tc.send, headers(tc.id, tc.at, sig))
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("library rejects: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("library: %v, want %v", err, tc.want)
			}
		})
	}
}

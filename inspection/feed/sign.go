package feed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks signatures (https://www.standardwebhooks.com): the
// signed content is "<webhook-id>.<webhook-timestamp>.<body>", the
// signature "v1," and the base64 of its HMAC-SHA-256 under the secret's
// bytes, and a request may carry several, space-separated, so a receiver
// accepts the request while either its old or its new secret verifies.

// SecretPrefix starts every signing secret ktcn issues.
const SecretPrefix = "whsec_"

// secretBytes decodes a "whsec_…" secret.
func secretBytes(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("feed: signing secret is not base64: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("feed: empty signing secret")
	}
	return key, nil
}

// Sign returns the "v1,…" signature of one delivery attempt under secret.
func Sign(secret, msgID string, at time.Time, body []byte) (string, error) {
	key, err := secretBytes(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(at.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// SignatureHeader is the webhook-signature header under every secret.
func SignatureHeader(secrets []string, msgID string, at time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, msgID, at, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return "", errors.New("feed: no signing secret")
	}
	return strings.Join(sigs, " "), nil
}

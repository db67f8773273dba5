package inspection

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/rs/zerolog"
)

// KeyReader reads API keys by their (public) key ID, or all of them,
// oldest first (then by ID).
type KeyReader interface {
	APIKey(id string) (access.APIKey, error)
	APIKeys() ([]access.APIKey, error)
}

// KeyWriter writes a key record, new or updated (revocation).
type KeyWriter interface {
	PutAPIKey(access.APIKey) error
}

// The key use cases: authenticating a bearer token, issuing and revoking
// API keys (access owns what a key and a principal are).

const (
	maxKeyNote   = 256
	maxKeysBatch = 1000
)

// AccessConfig wires Access; Store and Clock are required.
type AccessConfig struct {
	Store  Store
	Clock  calendar.Clock
	Logger zerolog.Logger
	// DefaultKeyTTL is the lifetime of a key created without an expiry
	// (0: DefaultKeyTTL); MaxKeyTTL the longest allowed (0: DefaultMaxKeyTTL).
	DefaultKeyTTL time.Duration
	MaxKeyTTL     time.Duration
	// Random is the source of key IDs and secrets; nil is crypto/rand.
	// Only tests of failure paths replace it.
	Random io.Reader
	// AuditObserver hears of the audit heads key changes commit; nil for
	// none.
	AuditObserver audit.Observer
	// Hooks run inside the transaction of every change (write.go).
	Hooks []Hook
}

// Access runs the authentication and key use cases.
type Access struct {
	reads      Reader
	w          writePath
	clock      calendar.Clock
	log        zerolog.Logger
	defaultTTL time.Duration
	maxTTL     time.Duration
	random     io.Reader
	keys       keyCache
}

// keyCache keeps the keys Authenticate has read, so that a request does
// not open a store transaction to find its key: that read waits for every
// commit before it to land (badger's read watermark), and every request
// made it (issue 21's profiles: a tenth of all blocked time). Keys are
// written only through this Access (CreateKeys, RevokeKey; the store is
// one process's), and each such write moves the generation once it has
// committed, whether it succeeded or not. An entry is used only under the
// generation it was read in, taken before the read: a read racing a
// revocation is tagged with the older generation and read again next
// time, so a revoked key is refused from the next request on, as without
// the cache. Expiry is checked against the clock on every request. Only
// keys found are kept (an unknown ID is not: anyone can send those), at
// most maxCachedKeys (a full cache is emptied).
type keyCache struct {
	gen atomic.Uint64
	mu  sync.Mutex
	m   map[string]cachedKey
}

type cachedKey struct {
	k   access.APIKey
	gen uint64
}

const maxCachedKeys = 4096

func (c *keyCache) get(id string, gen uint64) (access.APIKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || e.gen != gen {
		return access.APIKey{}, false
	}
	return e.k, true
}

func (c *keyCache) put(k access.APIKey, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = make(map[string]cachedKey)
	}
	c.m[k.ID] = cachedKey{k, gen}
}

// changed ends every entry read before a key write committed.
func (c *keyCache) changed() { c.gen.Add(1) }

// NewAccess checks the wiring and returns an Access.
func NewAccess(c AccessConfig) (*Access, error) {
	if c.Store == nil || c.Clock == nil {
		return nil, errors.New("inspection: NewAccess needs a store and a clock")
	}
	a := &Access{reads: c.Store, w: newWritePath(c.Store, c.AuditObserver, c.Hooks), clock: c.Clock, log: c.Logger,
		defaultTTL: c.DefaultKeyTTL, maxTTL: c.MaxKeyTTL, random: c.Random}
	if a.defaultTTL == 0 {
		a.defaultTTL = access.DefaultKeyTTL
	}
	if a.maxTTL == 0 {
		a.maxTTL = access.DefaultMaxKeyTTL
	}
	if a.random == nil {
		a.random = rand.Reader
	}
	if a.defaultTTL < 0 || a.maxTTL < 0 || a.defaultTTL > a.maxTTL {
		return nil, fmt.Errorf("inspection: key lifetimes: default %s must be positive and at most the maximum %s", a.defaultTTL, a.maxTTL)
	}
	return a, nil
}

// MaxKeyTTL is the longest lifetime a new key may have.
func (a *Access) MaxKeyTTL() time.Duration { return a.maxTTL }

// KeyStatus is k's status now (by the injected clock).
func (a *Access) KeyStatus(k access.APIKey) access.KeyStatus { return k.Status(a.clock.Now()) }

// Authenticate returns the key a bearer token stands for (its Principal is
// the caller). It reads the key from the store, or from the keys it read
// since the last key write (keyCache), so a revoked or expired key is
// refused from the next request on. A token that is
// malformed, unknown, or whose secret does not match gets the same
// answer; only the holder of the right secret learns that the key expired
// or was revoked. Store failures are not turned into 401s.
func (a *Access) Authenticate(ctx context.Context, token string) (access.APIKey, error) {
	id, secret, ok := access.SplitToken(token)
	if !ok {
		return access.APIKey{}, Unauthenticated("the key is not a ktcn API key")
	}
	now := a.clock.Now()
	gen := a.keys.gen.Load()
	k, cached := a.keys.get(id, gen)
	if !cached {
		err := a.reads.View(ctx, func(tx ReadTx) (err error) {
			k, err = tx.APIKey(id)
			return err
		})
		if errors.Is(err, fault.ErrNotFound) {
			return access.APIKey{}, Unauthenticated("the key is not valid")
		}
		if err != nil {
			return access.APIKey{}, fmt.Errorf("authenticate: %w", err)
		}
		a.keys.put(k, gen)
	}
	// Constant time, so the comparison does not reveal how much of a
	// guessed secret was right.
	if subtle.ConstantTimeCompare([]byte(access.HashSecret(id, secret)), []byte(k.SecretHash)) != 1 {
		return access.APIKey{}, Unauthenticated("the key is not valid")
	}
	switch k.Status(now) {
	case access.KeyRevoked:
		return access.APIKey{}, Unauthenticated("the key %s was revoked", k.ID)
	case access.KeyExpired:
		return access.APIKey{}, Unauthenticated("the key %s expired at %s", k.ID, k.ExpiresAt.Format(time.RFC3339))
	}
	return k, nil
}

// KeyRequest asks for a new key.
type KeyRequest struct {
	Principal string    `json:"principal"`
	ExpiresAt time.Time `json:"expires_at"` // zero: now + the default lifetime
	Note      string    `json:"note"`
}

// IssuedKey is a new key with its token. The token exists only here: it is
// shown once to whoever asked for it and never stored.
type IssuedKey struct {
	Key   access.APIKey
	Token string
}

// CreateKey issues one key; see CreateKeys.
func (a *Access) CreateKey(ctx context.Context, by access.Principal, req KeyRequest) (IssuedKey, error) {
	ks, err := a.CreateKeys(ctx, by, []KeyRequest{req})
	if err != nil {
		return IssuedKey{}, err
	}
	return ks[0], nil
}

// CreateKeys issues keys in one atomic write: all of them or none. Each
// principal name must parse, an agency principal's agency must exist, and
// the expiry must be in the future and within the maximum lifetime. by is
// who asked (recorded on the key).
func (a *Access) CreateKeys(ctx context.Context, by access.Principal, reqs []KeyRequest) ([]IssuedKey, error) {
	if err := by.Require(access.ActManageKeys); err != nil {
		return nil, err
	}
	if len(reqs) == 0 || len(reqs) > maxKeysBatch {
		return nil, Invalid("keys", "ask for 1 to %d keys, got %d", maxKeysBatch, len(reqs))
	}
	now := a.clock.Now()
	out := make([]IssuedKey, len(reqs))
	for i, r := range reqs {
		p, err := access.ParsePrincipal(r.Principal)
		if err != nil {
			return nil, err
		}
		exp := r.ExpiresAt
		if exp.IsZero() {
			exp = now.Add(a.defaultTTL)
		}
		if !exp.After(now) {
			return nil, Invalid("expires_at", "%s is not in the future", exp.Format(time.RFC3339))
		}
		if exp.After(now.Add(a.maxTTL)) {
			return nil, Invalid("expires_at", "%s is more than %s ahead (the longest a key may live)", exp.Format(time.RFC3339), a.maxTTL)
		}
		if err := declaration.CheckTextMax("note", r.Note, false, maxKeyNote); err != nil {
			return nil, err
		}
		// IDs and secrets are drawn before the transaction: a retried
		// transaction must write the same keys the caller is handed.
		id, err := a.randomHex(access.KeyIDBytes)
		if err != nil {
			return nil, err
		}
		secret, err := a.randomHex(access.SecretBytes)
		if err != nil {
			return nil, err
		}
		out[i] = IssuedKey{
			Key: access.APIKey{ID: id, Principal: p, SecretHash: access.HashSecret(id, secret), Note: strings.TrimSpace(r.Note),
				CreatedAt: now, CreatedBy: by.Name, ExpiresAt: exp},
			Token: access.Token(id, secret),
		}
	}
	defer a.keys.changed()
	err := a.w.write(ctx, by, audit.KeyCreated, now, func(tx Tx, c *Change) error {
		subjects := make([]string, 0, len(out))
		for _, k := range out {
			if p := k.Key.Principal; p.Role == access.RoleAgency {
				if _, err := tx.Agency(p.Agency); errors.Is(err, fault.ErrNotFound) {
					return Invalid("principal", "unknown agency %q", p.Agency)
				} else if err != nil {
					return err
				}
			}
			// 64 random bits make a clash all but impossible; refusing
			// one keeps a clash from replacing someone's key.
			if _, err := tx.APIKey(k.Key.ID); err == nil {
				return Conflict("id", "key ID %s is taken; try again", k.Key.ID)
			} else if !errors.Is(err, fault.ErrNotFound) {
				return err
			}
			if err := tx.PutAPIKey(k.Key); err != nil {
				return err
			}
			subjects = append(subjects, "api_key:"+k.Key.ID)
		}
		// One entry for the batch, by whoever asked; it covers each key's
		// record (principal, expiry, the secret's hash), never a token.
		c.Subjects = subjects
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range out {
		// The ID, never the token: IDs are how keys are named in logs.
		a.log.Info().Str("key_id", k.Key.ID).Str("principal", k.Key.Principal.Name).Str("by", by.Name).
			Time("expires_at", k.Key.ExpiresAt).Msg("API key created")
	}
	return out, nil
}

func (a *Access) randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(a.random, b); err != nil {
		return "", fmt.Errorf("inspection: random source: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Keys lists every key, active or not, oldest first.
func (a *Access) Keys(ctx context.Context, by access.Principal) ([]access.APIKey, error) {
	return read(ctx, a.reads, by, access.ActReadKeys, func(tx ReadTx) ([]access.APIKey, error) { return tx.APIKeys() })
}

// RevokeKey revokes a key from the next request on. Revoking a revoked key
// changes nothing and returns it as it is.
func (a *Access) RevokeKey(ctx context.Context, by access.Principal, id string) (access.APIKey, error) {
	if err := by.Require(access.ActManageKeys); err != nil {
		return access.APIKey{}, err
	}
	if !access.ValidKeyID(id) {
		return access.APIKey{}, NotFound("no key %q", id)
	}
	now := a.clock.Now()
	var (
		k       access.APIKey
		changed bool
	)
	defer a.keys.changed()
	err := a.w.write(ctx, by, audit.KeyRevoked, now, func(tx Tx, c *Change) (err error) {
		changed = false
		k, err = tx.APIKey(id)
		if errors.Is(err, fault.ErrNotFound) {
			return NotFound("no key %q", id)
		}
		if err != nil || k.RevokedAt != nil {
			return err
		}
		at := now
		k.RevokedAt, k.RevokedBy, changed = &at, by.Name, true
		if err := tx.PutAPIKey(k); err != nil {
			return err
		}
		c.Subjects = []string{"api_key:" + k.ID}
		return nil
	})
	if err != nil {
		return access.APIKey{}, err
	}
	if changed {
		a.log.Info().Str("key_id", k.ID).Str("principal", k.Principal.Name).Str("by", by.Name).Msg("API key revoked")
	}
	return k, nil
}

package inspection

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/rs/zerolog"
)

// Who may call ktcn: principals, their roles, and the API keys that
// authenticate them. Which role may use which endpoint is decided in one
// table in the api package; what lives here is the identity itself, the
// one record-level rule (an agency sees only what is routed to it) and the
// key use cases, so the CLI and the admin endpoints share them.

// Role is what a principal is allowed to do.
type Role string

const (
	RoleAgency         Role = "agency"          // a designated inspection body: its own assignments and results
	RoleCustoms        Role = "customs"         // customs officers: every decision, assignment and alert
	RolePolicyAuthor   Role = "policy-author"   // drafts and simulates policies
	RolePolicyApprover Role = "policy-approver" // approves and activates them (the second pair of eyes)
	RoleAuditor        Role = "auditor"         // reads everything, changes nothing
	RoleNSW            Role = "nsw"             // the National Single Window: submits declarations
	RoleAdmin          Role = "admin"           // manages API keys; no domain powers
)

var roles = []Role{RoleAgency, RoleCustoms, RolePolicyAuthor, RolePolicyApprover, RoleAuditor, RoleNSW, RoleAdmin}

// Roles lists every role.
func Roles() []Role { return slices.Clone(roles) }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(roles, r) }

// Principal is an authenticated caller. Its Name is what every result,
// alert, key change (and, later, audit entry) records as the actor, so it
// names a person or a system, not only a role:
//
//	agency:<agency id>      an agency (one credential per agency for now)
//	<role>                  a shared or system principal: "nsw", "customs"
//	<role>:<who>            a person or system within a role: "customs:nguyen.van.a"
//
// The role is always the first segment, so a name alone says what its
// holder may do and a principal cannot be renamed into another role.
type Principal struct {
	Name   string `json:"name"`
	Role   Role   `json:"role"`
	Agency string `json:"agency,omitempty"` // the agency ID, for RoleAgency only
}

// nameSegment is one segment of a principal name: lowercase, so that
// "Customs:A" and "customs:a" cannot become two principals, and no colon.
var nameSegment = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ParsePrincipal reads a principal name (see Principal) and derives its
// role and agency. It does not check that the agency exists.
func ParsePrincipal(name string) (Principal, error) {
	parts := strings.Split(name, ":")
	if len(parts) > 2 {
		return Principal{}, Invalid("principal", "%q has more than one ':'; want <role> or <role>:<who>", name)
	}
	role := Role(parts[0])
	if !role.Valid() {
		return Principal{}, Invalid("principal", "%q does not start with a role (%s)", name, roleList())
	}
	p := Principal{Name: name, Role: role}
	if len(parts) == 2 {
		if !nameSegment.MatchString(parts[1]) {
			return Principal{}, Invalid("principal", "%q: the part after ':' must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)", name)
		}
	}
	if role == RoleAgency {
		if len(parts) != 2 {
			return Principal{}, Invalid("principal", "an agency principal names its agency: agency:<agency id>")
		}
		p.Agency = parts[1]
	}
	return p, nil
}

func roleList() string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// Action is something a principal asks of the domain. Every use case
// names its action and refuses a principal whose role may not take it, so
// no caller (the API, the command line, a console or a job) can do more
// than the table below says; the api package's route table maps each
// route to one action and is only the first, coarse gate.
type Action string

const (
	ActDecide          Action = "decide"           // submit a declaration
	ActReadDecisions   Action = "read_decisions"   // read a decision, its explanation and overrides
	ActOverride        Action = "override"         // override a lot's inspection
	ActReadAssignments Action = "read_assignments" // read assignments and queues
	ActRecordResult    Action = "record_result"    // record an inspection's result
	ActRaiseAlert      Action = "raise_alert"      // enter an authority's warning
	ActReadGoods       Action = "read_goods"       // read a goods' mode and progress
	ActReadPolicy      Action = "read_policy"      // read the policy in force
	ActReadQuota       Action = "read_quota"       // read quota periods and scope counts
	ActRevealQuotaKey  Action = "reveal_quota_key" // reveal a closed period's key
	ActReadAudit       Action = "read_audit"       // read the audit chain
	ActReadScores      Action = "read_scores"      // read risk scores
	ActManageKeys      Action = "manage_keys"      // issue and revoke API keys
	ActReadKeys        Action = "read_keys"        // list API keys
	ActAdminister      Action = "administer"       // store policies and reference data, rescore
)

// rolesFor is who may take each action. The choices:
//   - admin manages keys and nothing else: a domain action is always
//     recorded under a domain principal, never under the key manager;
//   - alerts come from customs officers, who enter authorities' warnings;
//     agencies report results, not alerts;
//   - nsw submits declarations but reads no decision: explanations carry
//     quota state an importer must not see;
//   - customs may submit declarations too (manual entry when NSW is down);
//   - the auditor reads everything, including the key list, and writes
//     nothing (a quota key is revealed by the operator, ActorSystem);
//   - only customs overrides a lot's inspection.
//
// ActAdminister, and every other action, is open to the system principal
// (ktcn acting on its operator's authority: the command line, jobs).
func rolesFor(a Action) []Role {
	switch a {
	case ActDecide:
		return []Role{RoleNSW, RoleCustoms}
	case ActReadDecisions, ActReadAssignments:
		return []Role{RoleAgency, RoleCustoms, RoleAuditor}
	case ActOverride, ActRaiseAlert:
		return []Role{RoleCustoms}
	case ActRecordResult:
		return []Role{RoleAgency}
	case ActReadGoods, ActReadQuota, ActReadScores:
		return []Role{RoleCustoms, RoleAuditor}
	case ActReadPolicy:
		return []Role{RoleCustoms, RolePolicyAuthor, RolePolicyApprover, RoleAuditor}
	case ActReadAudit, ActRevealQuotaKey:
		return []Role{RoleAuditor}
	case ActManageKeys:
		return []Role{RoleAdmin}
	case ActReadKeys:
		return []Role{RoleAdmin, RoleAuditor}
	}
	return nil
}

// RolesFor lists the roles that may take an action (the system principal
// aside).
func RolesFor(a Action) []Role { return rolesFor(a) }

// ActorSystem is the name of the system principal.
const ActorSystem = "system"

// roleSystem is the system principal's role: not a role a key can carry
// (ParsePrincipal refuses it), only what SystemPrincipal returns.
const roleSystem Role = "system"

// SystemPrincipal is ktcn acting on its operator's authority: storing the
// configured policy at start, loading reference data, the jobs, and the
// command line run by whoever holds the data directory.
func SystemPrincipal() Principal { return Principal{Name: ActorSystem, Role: roleSystem} }

// Can reports whether p may take action a.
func (p Principal) Can(a Action) bool {
	return p.Role == roleSystem && p.Name == ActorSystem || slices.Contains(rolesFor(a), p.Role)
}

// Require is Can as an error: Forbidden, naming the role and the action.
func (p Principal) Require(a Action) error {
	if p.Can(a) {
		return nil
	}
	if p.Role == "" {
		return Forbidden("no principal may %s without authenticating", a)
	}
	return Forbidden("the %s role may not %s", p.Role, a)
}

// MaySee reports whether p may see a record routed to agency. An agency
// sees only its own records; every other role that the route admits sees
// all of them. Callers answer "not found" when this is false, exactly as
// for a record that does not exist, so an agency cannot learn that another
// agency's assignment or decision exists.
func (p Principal) MaySee(agency string) bool {
	switch {
	case p.Role == roleSystem && p.Name == ActorSystem:
		return true
	case !p.Role.Valid():
		return false // the zero Principal (no authentication ran) sees nothing
	case p.Role != RoleAgency:
		return true
	}
	return agency != "" && agency == p.Agency
}

// API keys.
//
// A token is "ktcn_<key id>_<secret>": the key ID (8 random bytes, hex) is
// not secret and finds the record in one read; the secret (32 random
// bytes, hex) is never stored, only SHA-256 over it and the key ID. A fast
// hash is enough here, unlike for passwords: with 256 bits of entropy there
// is nothing to guess, so slowing down guesses buys nothing, and a fast
// hash keeps per-request authentication cheap.

const (
	tokenPrefix  = "ktcn_"
	keyIDBytes   = 8
	secretBytes  = 32
	keyIDLen     = 2 * keyIDBytes
	secretLen    = 2 * secretBytes
	tokenLen     = len(tokenPrefix) + keyIDLen + 1 + secretLen
	maxKeyNote   = 256
	maxKeysBatch = 1000
)

// Key lifetimes. Every key expires: a leaked or forgotten key stops
// working on its own.
const (
	DefaultKeyTTL    = 90 * 24 * time.Hour
	DefaultMaxKeyTTL = 366 * 24 * time.Hour
)

var hexKeyID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// APIKey is a stored key: who it authenticates and until when. It holds no
// secret, only a hash of it.
type APIKey struct {
	ID        string    `json:"id"`
	Principal Principal `json:"principal"`
	// SecretHash is hex SHA-256 over the key ID and secret (see hashSecret).
	SecretHash string     `json:"secret_hash"`
	Note       string     `json:"note,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
}

// KeyStatus is whether a key authenticates at a given time.
type KeyStatus string

const (
	KeyActive  KeyStatus = "active"
	KeyExpired KeyStatus = "expired"
	KeyRevoked KeyStatus = "revoked"
)

// Status is the key's status at now; revocation wins over expiry.
func (k APIKey) Status(now time.Time) KeyStatus {
	switch {
	case k.RevokedAt != nil:
		return KeyRevoked
	case !now.Before(k.ExpiresAt):
		return KeyExpired
	}
	return KeyActive
}

// hashSecret binds the secret to its key ID, so a stored hash can only
// ever authenticate the key it was issued for.
func hashSecret(keyID, secret string) string {
	sum := sha256.Sum256([]byte("ktcn/apikey/v1\x00" + keyID + "\x00" + secret))
	return hex.EncodeToString(sum[:])
}

// splitToken parses "ktcn_<id>_<secret>" without echoing it in errors: a
// token must never reach a log line or a response.
func splitToken(token string) (id, secret string, ok bool) {
	if len(token) != tokenLen || !strings.HasPrefix(token, tokenPrefix) || token[len(tokenPrefix)+keyIDLen] != '_' {
		return "", "", false
	}
	id = token[len(tokenPrefix) : len(tokenPrefix)+keyIDLen]
	secret = token[len(tokenPrefix)+keyIDLen+1:]
	if !isLowerHex(id) || !isLowerHex(secret) {
		return "", "", false
	}
	return id, secret, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

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
}

// NewAccess checks the wiring and returns an Access.
func NewAccess(c AccessConfig) (*Access, error) {
	if c.Store == nil || c.Clock == nil {
		return nil, errors.New("inspection: NewAccess needs a store and a clock")
	}
	a := &Access{reads: c.Store, w: writePath{store: c.Store, observer: c.AuditObserver, hooks: c.Hooks}, clock: c.Clock, log: c.Logger,
		defaultTTL: c.DefaultKeyTTL, maxTTL: c.MaxKeyTTL, random: c.Random}
	if a.defaultTTL == 0 {
		a.defaultTTL = DefaultKeyTTL
	}
	if a.maxTTL == 0 {
		a.maxTTL = DefaultMaxKeyTTL
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
func (a *Access) KeyStatus(k APIKey) KeyStatus { return k.Status(a.clock.Now()) }

// Authenticate returns the key a bearer token stands for (its Principal is
// the caller). It reads
// the key from the store on every call, with no cache, so a revoked or
// expired key is refused from the next request on. A token that is
// malformed, unknown, or whose secret does not match gets the same
// answer; only the holder of the right secret learns that the key expired
// or was revoked. Store failures are not turned into 401s.
func (a *Access) Authenticate(ctx context.Context, token string) (APIKey, error) {
	id, secret, ok := splitToken(token)
	if !ok {
		return APIKey{}, Unauthenticated("the key is not a ktcn API key")
	}
	now := a.clock.Now()
	var k APIKey
	err := a.reads.View(ctx, func(tx ReadTx) (err error) {
		k, err = tx.APIKey(id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return APIKey{}, Unauthenticated("the key is not valid")
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("authenticate: %w", err)
	}
	// Constant time, so the comparison does not reveal how much of a
	// guessed secret was right.
	if subtle.ConstantTimeCompare([]byte(hashSecret(id, secret)), []byte(k.SecretHash)) != 1 {
		return APIKey{}, Unauthenticated("the key is not valid")
	}
	switch k.Status(now) {
	case KeyRevoked:
		return APIKey{}, Unauthenticated("the key %s was revoked", k.ID)
	case KeyExpired:
		return APIKey{}, Unauthenticated("the key %s expired at %s", k.ID, k.ExpiresAt.Format(time.RFC3339))
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
	Key   APIKey
	Token string
}

// CreateKey issues one key; see CreateKeys.
func (a *Access) CreateKey(ctx context.Context, by Principal, req KeyRequest) (IssuedKey, error) {
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
func (a *Access) CreateKeys(ctx context.Context, by Principal, reqs []KeyRequest) ([]IssuedKey, error) {
	if err := by.Require(ActManageKeys); err != nil {
		return nil, err
	}
	if len(reqs) == 0 || len(reqs) > maxKeysBatch {
		return nil, Invalid("keys", "ask for 1 to %d keys, got %d", maxKeysBatch, len(reqs))
	}
	now := a.clock.Now()
	out := make([]IssuedKey, len(reqs))
	for i, r := range reqs {
		p, err := ParsePrincipal(r.Principal)
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
		if err := checkTextMax("note", r.Note, false, maxKeyNote); err != nil {
			return nil, err
		}
		// IDs and secrets are drawn before the transaction: a retried
		// transaction must write the same keys the caller is handed.
		id, err := a.randomHex(keyIDBytes)
		if err != nil {
			return nil, err
		}
		secret, err := a.randomHex(secretBytes)
		if err != nil {
			return nil, err
		}
		out[i] = IssuedKey{
			Key: APIKey{ID: id, Principal: p, SecretHash: hashSecret(id, secret), Note: strings.TrimSpace(r.Note),
				CreatedAt: now, CreatedBy: by.Name, ExpiresAt: exp},
			Token: tokenPrefix + id + "_" + secret,
		}
	}
	err := a.w.write(ctx, by, audit.KeyCreated, now, func(tx Tx, c *Change) error {
		subjects := make([]string, 0, len(out))
		for _, k := range out {
			if p := k.Key.Principal; p.Role == RoleAgency {
				if _, err := tx.Agency(p.Agency); errors.Is(err, ErrNotFound) {
					return Invalid("principal", "unknown agency %q", p.Agency)
				} else if err != nil {
					return err
				}
			}
			// 64 random bits make a clash all but impossible; refusing
			// one keeps a clash from replacing someone's key.
			if _, err := tx.APIKey(k.Key.ID); err == nil {
				return Conflict("id", "key ID %s is taken; try again", k.Key.ID)
			} else if !errors.Is(err, ErrNotFound) {
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
func (a *Access) Keys(ctx context.Context, by Principal) ([]APIKey, error) {
	if err := by.Require(ActReadKeys); err != nil {
		return nil, err
	}
	var list []APIKey
	err := a.reads.View(ctx, func(tx ReadTx) (err error) {
		list, err = tx.APIKeys()
		return err
	})
	return list, err
}

// RevokeKey revokes a key from the next request on. Revoking a revoked key
// changes nothing and returns it as it is.
func (a *Access) RevokeKey(ctx context.Context, by Principal, id string) (APIKey, error) {
	if err := by.Require(ActManageKeys); err != nil {
		return APIKey{}, err
	}
	if !hexKeyID.MatchString(id) {
		return APIKey{}, NotFound("no key %q", id)
	}
	now := a.clock.Now()
	var (
		k       APIKey
		changed bool
	)
	err := a.w.write(ctx, by, audit.KeyRevoked, now, func(tx Tx, c *Change) (err error) {
		changed = false
		k, err = tx.APIKey(id)
		if errors.Is(err, ErrNotFound) {
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
		return APIKey{}, err
	}
	if changed {
		a.log.Info().Str("key_id", k.ID).Str("principal", k.Principal.Name).Str("by", by.Name).Msg("API key revoked")
	}
	return k, nil
}

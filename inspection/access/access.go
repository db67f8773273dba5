// Package access is who may call ktcn and what each may do: principals
// and their roles, the table of which role may take which domain action
// (every use case checks it; the api's route table is only the first
// gate), the one record-level rule (an agency sees only what is routed to
// it), and the API key records and tokens that authenticate principals.
// It owns identity and permission; the key use cases that store keys are
// inspection's (they go through its write path).
package access

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/fault"
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
	RoleMetrics        Role = "metrics"         // scrapes GET /metrics (a Prometheus server); nothing else
)

var roles = []Role{RoleAgency, RoleCustoms, RolePolicyAuthor, RolePolicyApprover, RoleAuditor, RoleNSW, RoleAdmin, RoleMetrics}

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
	// Key is the ID of the API key the principal authenticated with
	// (empty for the system principal and on a stored key), so every
	// change names the key, and through its record who issued it.
	Key string `json:"key,omitempty"`
}

// nameSegment is one segment of a principal name: lowercase, so that
// "Customs:A" and "customs:a" cannot become two principals, and no colon.
var nameSegment = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ParsePrincipal reads a principal name (see Principal) and derives its
// role and agency. It does not check that the agency exists.
func ParsePrincipal(name string) (Principal, error) {
	parts := strings.Split(name, ":")
	if len(parts) > 2 {
		return Principal{}, fault.Of(fault.Invalid, "principal", "%q has more than one ':'; want <role> or <role>:<who>", name)
	}
	role := Role(parts[0])
	if !role.Valid() {
		return Principal{}, fault.Of(fault.Invalid, "principal", "%q does not start with a role (%s)", name, roleList())
	}
	p := Principal{Name: name, Role: role}
	if len(parts) == 2 {
		if !nameSegment.MatchString(parts[1]) {
			return Principal{}, fault.Of(fault.Invalid, "principal", "%q: the part after ':' must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)", name)
		}
	}
	if role == RoleAgency {
		if len(parts) != 2 {
			return Principal{}, fault.Of(fault.Invalid, "principal", "an agency principal names its agency: agency:<agency id>")
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
	// ActRegisterCertificate puts a checked certificate on a manufacturer's
	// record (the agency's documents check, or customs).
	ActRegisterCertificate Action = "register_certificate"
	// ActLinkGoods links two goods identities into one, or unlinks them.
	ActLinkGoods Action = "link_goods"
	// ActReadEvents reads the NSW feed (an agency only its own lots').
	ActReadEvents Action = "read_events"
	// ActManageWebhooks registers, rotates and removes webhook receivers.
	ActManageWebhooks Action = "manage_webhooks"
	// ActDraftPolicy drafts, edits and submits policy versions.
	ActDraftPolicy Action = "draft_policy"
	// ActApprovePolicy approves, rejects, activates, retires and shadows
	// them: the second pair of eyes.
	ActApprovePolicy Action = "approve_policy"
	// ActBackup takes a backup of the store (to the backup directory, or
	// streamed to the caller).
	ActBackup Action = "backup"
	// ActReadJobs lists the periodic jobs and how their runs went.
	ActReadJobs Action = "read_jobs"
	// ActRunJobs starts a job now, outside its schedule.
	ActRunJobs Action = "run_jobs"
	// ActReadMetrics scrapes the operational metrics (GET /metrics) from
	// another machine; a scrape from the loopback needs no key.
	ActReadMetrics Action = "read_metrics"
	// ActRunBacktests starts and cancels backtests of a policy version.
	ActRunBacktests Action = "run_backtests"
	// ActReadBacktests reads backtests: progress, report, changed lots.
	ActReadBacktests Action = "read_backtests"
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
//   - only customs overrides a lot's inspection;
//   - the feed is read by nsw (it is what the feed is for), customs, the
//     auditor, and an agency (its own lots' events: cancellations reach
//     it without polling); its payloads carry no quota state;
//   - admin manages webhook receivers, as it manages keys: the signing
//     secrets are credentials;
//   - admin takes backups, an operator's task: a backup holds every record
//     (though never the quota secret nor the audit key), so no domain role
//     may take one.
//   - admin runs the periodic jobs by hand (they act as the system, and
//     every one is safe to run twice); the auditor reads how they went.
//   - the operational metrics are the operator's (admin), the auditor's
//     and a scraper's (metrics, a role that may do nothing else, so the
//     key a Prometheus server holds opens no record): they carry quota
//     shares and agencies' backlogs, which nsw must not see, and nothing
//     per importer, goods or declaration.
//   - policy authors and approvers start backtests (an author tries a
//     draft, the approver checks it before approving); policy staff,
//     customs and auditors read them: a backtest's report holds quota
//     counts, as the policy and quota reads do.
//
// ActAdminister, and every other action, is open to the system principal
// (ktcn acting on its operator's authority: the command line, jobs).
func rolesFor(a Action) []Role {
	switch a {
	case ActDecide:
		return []Role{RoleNSW, RoleCustoms}
	case ActReadDecisions, ActReadAssignments:
		return []Role{RoleAgency, RoleCustoms, RoleAuditor}
	case ActOverride, ActRaiseAlert, ActLinkGoods:
		return []Role{RoleCustoms}
	case ActRecordResult:
		return []Role{RoleAgency}
	case ActRegisterCertificate:
		return []Role{RoleAgency, RoleCustoms}
	case ActReadGoods, ActReadQuota, ActReadScores:
		return []Role{RoleCustoms, RoleAuditor}
	case ActReadPolicy:
		return []Role{RoleCustoms, RolePolicyAuthor, RolePolicyApprover, RoleAuditor}
	case ActReadAudit, ActRevealQuotaKey:
		return []Role{RoleAuditor}
	case ActManageKeys:
		return []Role{RoleAdmin}
	case ActReadKeys, ActReadJobs:
		return []Role{RoleAdmin, RoleAuditor}
	case ActReadMetrics:
		return []Role{RoleAdmin, RoleAuditor, RoleMetrics}
	case ActRunJobs:
		return []Role{RoleAdmin}
	case ActReadEvents:
		return []Role{RoleNSW, RoleCustoms, RoleAuditor, RoleAgency}
	case ActManageWebhooks, ActBackup:
		return []Role{RoleAdmin}
	case ActDraftPolicy:
		return []Role{RolePolicyAuthor}
	case ActApprovePolicy:
		return []Role{RolePolicyApprover}
	case ActRunBacktests:
		return []Role{RolePolicyAuthor, RolePolicyApprover}
	case ActReadBacktests:
		return []Role{RolePolicyAuthor, RolePolicyApprover, RoleCustoms, RoleAuditor}
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
		return fault.Of(fault.Forbidden, "", "no principal may %s without authenticating", a)
	}
	return fault.Of(fault.Forbidden, "", "the %s role may not %s", p.Role, a)
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
	tokenPrefix = "ktcn_"
	// KeyIDBytes and SecretBytes are the random bytes of a key ID and a
	// secret.
	KeyIDBytes  = 8
	SecretBytes = 32
	keyIDLen    = 2 * KeyIDBytes
	secretLen   = 2 * SecretBytes
	tokenLen    = len(tokenPrefix) + keyIDLen + 1 + secretLen
)

// Key lifetimes. Every key expires: a leaked or forgotten key stops
// working on its own.
const (
	DefaultKeyTTL    = 90 * 24 * time.Hour
	DefaultMaxKeyTTL = 366 * 24 * time.Hour
)

var hexKeyID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// ValidKeyID reports whether id has the form of a key ID.
func ValidKeyID(id string) bool { return hexKeyID.MatchString(id) }

// Token is the bearer token of a key ID and its secret (both hex).
func Token(id, secret string) string { return tokenPrefix + id + "_" + secret }

// APIKey is a stored key: who it authenticates and until when. It holds no
// secret, only a hash of it.
type APIKey struct {
	ID        string    `json:"id"`
	Principal Principal `json:"principal"`
	// SecretHash is hex SHA-256 over the key ID and secret (see HashSecret).
	SecretHash string     `json:"secret_hash"`
	Note       string     `json:"note,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
}

// Acting is the principal a request authenticated with k acts as: the
// key's principal, naming the key, so every change it makes names the key
// (and through the key's record, who issued it).
func (k APIKey) Acting() Principal {
	p := k.Principal
	p.Key = k.ID
	return p
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

// HashSecret binds the secret to its key ID, so a stored hash can only
// ever authenticate the key it was issued for.
func HashSecret(keyID, secret string) string {
	sum := sha256.Sum256([]byte("ktcn/apikey/v1\x00" + keyID + "\x00" + secret))
	return hex.EncodeToString(sum[:])
}

// SplitToken parses "ktcn_<id>_<secret>" without echoing it in errors: a
// token must never reach a log line or a response.
func SplitToken(token string) (id, secret string, ok bool) {
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

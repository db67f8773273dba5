package inspection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
)

// PolicyReader reads stored policy documents and which is in force.
type PolicyReader interface {
	Policy(version string) ([]byte, error)
	ActivePolicy() (ActivePolicy, error)
	PolicyVersionReader
}

// PolicyWriter stores a document and puts a stored version in force.
type PolicyWriter interface {
	PutPolicy(version string, doc []byte) error
	PutActivePolicy(ActivePolicy) error
	PolicyVersionWriter
}

// The policy in force. Decisions read it from the store in their own
// transaction, so when another version comes into force between the
// preparation of a decision and its commit, the decision follows and
// names the version in force at the commit (Decide).

// ActivePolicy names the policy version in force, and since when.
type ActivePolicy struct {
	Version     string    `json:"version"`
	Digest      string    `json:"digest"`
	ActivatedAt time.Time `json:"activated_at"`
	ActivatedBy string    `json:"activated_by"`
	// Next is the version scheduled to take over, at its At.
	Next *ScheduledPolicy `json:"next,omitempty"`
	// Shadow lists the versions evaluated in shadow beside every decision
	// (shadow.go).
	Shadow []string `json:"shadow,omitempty"`
}

// policyCache holds parsed policy documents by version: a stored version
// never changes (Start refuses new content under an old label), so a
// document is parsed once per process.
type policyCache struct {
	mu sync.RWMutex
	m  map[string]*policy.Policy
}

func (c *policyCache) get(version string) *policy.Policy {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[version]
}

func (c *policyCache) put(p *policy.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*policy.Policy{}
	}
	c.m[p.Version] = p
}

// policyIn is the policy in force at now as tx sees it: the version the
// store's pointer says (or the one scheduled to take over, once its time
// has come), or the configured policy in a store that has none in force
// yet (Start has not run on it).
func (s *Service) policyIn(tx PolicyReader, now time.Time) (*policy.Policy, error) {
	p, _, err := s.inForceAt(tx, now)
	return p, err
}

// inForceAt is policyIn with the pointer it read (zero in a store with
// none), for the decision path to find the versions in shadow without
// reading it again.
func (s *Service) inForceAt(tx PolicyReader, now time.Time) (*policy.Policy, ActivePolicy, error) {
	a, err := tx.ActivePolicy()
	if errors.Is(err, fault.ErrNotFound) {
		s.seen(s.configured)
		return s.configured, ActivePolicy{}, nil
	}
	if err != nil {
		return nil, a, fmt.Errorf("policy in force: %w", err)
	}
	version, _ := a.effective(now)
	p, err := s.storedPolicy(tx, version)
	if err != nil {
		return nil, a, fmt.Errorf("policy in force %s: %w", version, err)
	}
	s.seen(p)
	return p, a, nil
}

// storedPolicy is a stored version's document, parsed once per process.
func (s *Service) storedPolicy(tx PolicyReader, version string) (*policy.Policy, error) {
	if p := s.policies.get(version); p != nil {
		return p, nil
	}
	doc, err := tx.Policy(version)
	if err != nil {
		return nil, err
	}
	p, err := policy.ParsePolicy(doc)
	if err != nil {
		return nil, err
	}
	if p.Version != version {
		return nil, fmt.Errorf("the stored document is version %s", p.Version)
	}
	s.policies.put(p)
	return p, nil
}

// seen notes the policy a transaction found in force, for the next
// declaration to be read under.
func (s *Service) seen(p *policy.Policy) {
	if s.inForce.Load() != p {
		s.inForce.Store(p)
	}
}

// PolicyInForce is the policy in force now. It is public knowledge (every
// decision names its version), so it takes no principal; Policy is the
// read use case that does.
func (s *Service) PolicyInForce(ctx context.Context) (*policy.Policy, error) {
	var p *policy.Policy
	err := s.reads.View(ctx, func(tx ReadTx) (err error) {
		p, err = s.policyIn(tx, s.clock.Now())
		return err
	})
	return p, err
}

// Policy returns the policy in force to a principal who may read it.
func (s *Service) Policy(ctx context.Context, by access.Principal) (*policy.Policy, error) {
	if err := by.Require(access.ActReadPolicy); err != nil {
		return nil, err
	}
	return s.PolicyInForce(ctx)
}

package audit

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/rs/zerolog"
)

// Signed checkpoints. The chain proves that no entry was changed in place,
// but whoever can write the store can also rewrite the whole chain from
// some entry on, or cut its end off, and recompute every hash. A
// checkpoint is the head (sequence and hash) at a moment, signed with an
// Ed25519 key kept outside the data dir and written outside the store (a
// log line and a line appended to a file), so a later rewrite or
// truncation of anything up to a checkpoint is caught by comparing the
// chain with it. The window left is the entries since the last
// checkpoint: every DefaultCheckpointEvery entries and at every clean
// shutdown.

// DefaultCheckpointEvery is how many entries pass between checkpoints.
const DefaultCheckpointEvery = 1000

// checkpointTag starts every signed message, so a checkpoint signature can
// never be replayed as a signature over anything else.
const checkpointTag = "ktcn/audit-checkpoint/v1"

// Checkpoint is a signed audit head: one JSON line in the checkpoint file.
type Checkpoint struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"` // hex, the chain's hash at Seq
	At   time.Time `json:"at"`
	// KeyID is the first 8 bytes of SHA-256 of the public key (hex): it
	// says which key signed, across a key rotation.
	KeyID string `json:"key_id"`
	// Signature is Ed25519 over CheckpointMessage, base64 (standard, padded).
	Signature string `json:"signature"`
}

// CheckpointMessage is what a checkpoint's signature covers: the tag as a
// 4-byte big-endian length and its bytes, then Seq (8 bytes big-endian),
// the 32-byte hash, and At as UnixNano (8 bytes big-endian).
func CheckpointMessage(seq uint64, hash [sha256.Size]byte, at time.Time) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(checkpointTag)))
	b = append(b, checkpointTag...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, hash[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
}

// KeyIDOf names a checkpoint public key.
func KeyIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign signs head at the time at.
func Sign(key ed25519.PrivateKey, head Head, at time.Time) (Checkpoint, error) {
	h, ok := DecodeHash(head.Hash)
	if !ok || head.Seq == 0 {
		return Checkpoint{}, fmt.Errorf("checkpoint: head %d %q is not a chain head", head.Seq, head.Hash)
	}
	sig := ed25519.Sign(key, CheckpointMessage(head.Seq, h, at))
	return Checkpoint{Seq: head.Seq, Hash: head.Hash, At: at, KeyID: KeyIDOf(key.Public().(ed25519.PublicKey)),
		Signature: base64.StdEncoding.EncodeToString(sig)}, nil
}

// Verify checks the signature with pub.
func (c Checkpoint) Verify(pub ed25519.PublicKey) error {
	h, ok := DecodeHash(c.Hash)
	if !ok || c.Seq == 0 {
		return fmt.Errorf("checkpoint %d: hash %q is not 64 hex digits", c.Seq, c.Hash)
	}
	if c.KeyID != KeyIDOf(pub) {
		return fmt.Errorf("checkpoint %d: signed by key %s, not by %s", c.Seq, c.KeyID, KeyIDOf(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, CheckpointMessage(c.Seq, h, c.At), sig) {
		return fmt.Errorf("checkpoint %d: the signature is not valid", c.Seq)
	}
	return nil
}

// ParsePublicKey reads a public key as ktcn prints it (64 hex digits).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fault.Of(fault.Invalid, "pubkey", "want an Ed25519 public key as 64 hex digits")
	}
	return ed25519.PublicKey(b), nil
}

// ReadCheckpoints reads a checkpoint file and checks every signature with
// pub; a line that does not parse or verify is a failure naming the line.
func ReadCheckpoints(r io.Reader, pub ed25519.PublicKey) ([]Checkpoint, error) {
	var out []Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var c Checkpoint
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("%w: checkpoint file line %d: %v", ErrMismatch, n, err)
		}
		if err := c.Verify(pub); err != nil {
			return nil, fmt.Errorf("%w: checkpoint file line %d: %v", ErrMismatch, n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return out, nil
}

// CheckpointerConfig wires a Checkpointer; Key, Out and Clock are required.
type CheckpointerConfig struct {
	Key ed25519.PrivateKey
	// Every is how many entries pass between checkpoints (0: the default).
	Every uint64
	// Out receives each checkpoint as one JSON line; it is synced after
	// each when it has a Sync method (an *os.File opened for append).
	Out    io.Writer
	Clock  calendar.Clock
	Logger zerolog.Logger
	// Last is the sequence of the last checkpoint already in Out, so a
	// restart neither repeats it nor waits a full interval for the next.
	Last uint64
}

// Checkpointer signs and writes checkpoints. It is an Observer:
// wired into the Service and Access, it hears of every committed head and
// writes a checkpoint when the chain crosses a multiple of Every.
type Checkpointer struct {
	mu    sync.Mutex
	key   ed25519.PrivateKey
	every uint64
	out   io.Writer
	clock calendar.Clock
	log   zerolog.Logger
	last  uint64
}

// NewCheckpointer checks the wiring.
func NewCheckpointer(c CheckpointerConfig) (*Checkpointer, error) {
	if len(c.Key) != ed25519.PrivateKeySize || c.Out == nil || c.Clock == nil {
		return nil, errors.New("audit: NewCheckpointer needs an Ed25519 key, an output and a clock")
	}
	if c.Every == 0 {
		c.Every = DefaultCheckpointEvery
	}
	return &Checkpointer{key: c.Key, every: c.Every, out: c.Out, clock: c.Clock, log: c.Logger, last: c.Last}, nil
}

// AuditCommitted writes a checkpoint when head is the first head seen past
// a multiple of Every. Heads arrive from many goroutines out of order; a
// late, older head never moves the checkpoint back. A failure to write is
// logged: the change it follows has committed and cannot be refused now.
func (c *Checkpointer) AuditCommitted(head Head) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if head.Seq/c.every <= c.last/c.every {
		return
	}
	if _, err := c.emitLocked(head); err != nil {
		c.log.Error().Err(err).Uint64("seq", head.Seq).Msg("audit checkpoint not written")
	}
}

// Sync writes a checkpoint of head, the store's head now, if it is past
// the last checkpoint (at a clean shutdown, and when a command that wrote
// exits). A zero head (an empty log) writes nothing.
func (c *Checkpointer) Sync(head Head) (Checkpoint, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if head.Seq == 0 || head.Seq <= c.last {
		return Checkpoint{}, false, nil
	}
	cp, err := c.emitLocked(head)
	return cp, err == nil, err
}

func (c *Checkpointer) emitLocked(head Head) (Checkpoint, error) {
	cp, err := Sign(c.key, head, c.clock.Now())
	if err != nil {
		return Checkpoint{}, err
	}
	line, err := json.Marshal(cp)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("encode checkpoint: %w", err)
	}
	// The log line first: it reaches the log shipper even if the file
	// cannot be written, and it is a second copy outside this host.
	c.log.Info().Uint64("seq", cp.Seq).Str("hash", cp.Hash).Time("at", cp.At).Str("key_id", cp.KeyID).
		Str("signature", cp.Signature).Msg("audit checkpoint")
	if _, err := c.out.Write(append(line, '\n')); err != nil {
		return Checkpoint{}, fmt.Errorf("write checkpoint: %w", err)
	}
	if s, ok := c.out.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return Checkpoint{}, fmt.Errorf("sync checkpoint: %w", err)
		}
	}
	if head.Seq > c.last {
		c.last = head.Seq
	}
	return cp, nil
}

package store

import (
	"encoding/binary"
	"fmt"

	// goccy/go-json writes the same bytes as encoding/json (the store's
	// format, and what inspection.EncodedWriter bodies must match; kept so
	// by TestEncodingIsEncodingJSON) at a third of its cost to encode and a
	// seventh to decode a decision: the group committer encodes and decodes
	// records serially, so their cost bounds durable decisions per second.
	json "github.com/goccy/go-json"
)

// encodingV1 is the first byte of every value. Records follow it as JSON;
// index entries, policy documents and the schema version follow it as raw
// bytes. A later format gets a new byte so old values stay readable
// during a migration.
const encodingV1 byte = 1

// encode writes v as version byte + JSON (encoding/json's bytes).
func encode(p prefix, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", p, err)
	}
	out := make([]byte, 0, 1+len(b))
	out = append(out, encodingV1)
	return append(out, b...), nil
}

// decode reads a value written by encode into v.
func decode(p prefix, val []byte, v any) error {
	body, err := unwrap(p, val)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", p, err)
	}
	return nil
}

// encodeRaw writes version byte + raw bytes (index entries, policy
// documents, meta).
func encodeRaw(raw []byte) []byte {
	out := make([]byte, 0, 1+len(raw))
	out = append(out, encodingV1)
	return append(out, raw...)
}

// unwrap checks the version byte and returns the bytes after it.
func unwrap(p prefix, val []byte) ([]byte, error) {
	if len(val) == 0 {
		return nil, fmt.Errorf("decode %s: empty value", p)
	}
	if val[0] != encodingV1 {
		return nil, fmt.Errorf("decode %s: unknown value encoding version %d", p, val[0])
	}
	return val[1:], nil
}

// encodeSchema writes the schema version as version byte + 4-byte big-endian
// integer: fixed, so any future build can read it before anything else.
func encodeSchema(v uint32) []byte {
	return encodeRaw(binary.BigEndian.AppendUint32(nil, v))
}

func decodeSchema(val []byte) (uint32, error) {
	b, err := unwrap(prefixMeta, val)
	if err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, fmt.Errorf("decode schema version: %d bytes, want 4", len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

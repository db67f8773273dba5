package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
)

// Backups. A backup file is a header line, a JSON manifest line and
// badger's backup stream, compressed with zstd:
//
//	KTCN-BACKUP 1\n
//	{"format":2,"compression":"zstd","created_at":...,"stream_bytes":N,"stream_sha256":"..."}\n
//	<N bytes: badger's Stream.Backup output in one zstd frame>
//
// The manifest, which comes first, carries the stream's length and
// SHA-256 (of the bytes in the file, compressed), so a backup into a file
// leaves a slot for it (BackupTo) and a streamed one stages the stream in
// a temporary file (Backup); Restore checks both before anything is
// loaded. The stream is read in ONE badger transaction (one producer
// goroutine: badger's Stream opens one snapshot per producer), so the
// backup is a consistent snapshot that holds everything committed, and
// so acknowledged, before it began: an audit entry and the records it
// covers are in it together or not at all.
//
// The stream is compressed because badger writes every value as it is:
// about 6.4 KB a decision, against 1.4 KB in the compressed tables.
// Format 1, the same file with the stream uncompressed, is still read.
//
// Nothing outside the data dir is in a backup: not the quota master
// secret, not the audit signing key, not the signed checkpoints.

// BackupFormat is the version of the backup file layout this build
// writes: 2, the stream compressed (zstd). It reads 1 and 2.
const BackupFormat = 2

// backupCompression names the compression of a format 2 stream.
const backupCompression = "zstd"

const backupMagic = "KTCN-BACKUP 1\n"

// maxManifest bounds the manifest line a reader accepts.
const maxManifest = 64 << 10

// ErrBackupChecksum is wrapped by Restore and VerifyBackup when a backup's
// stream does not match its manifest's length or SHA-256.
var ErrBackupChecksum = errors.New("backup checksum mismatch")

// ErrRestoreTarget is wrapped by Restore when the target directory is not
// empty.
var ErrRestoreTarget = errors.New("restore target is not an empty directory")

// BackupManifest describes a backup's stream.
type BackupManifest struct {
	Format       int       `json:"format"`
	Compression  string    `json:"compression,omitempty"` // "zstd" in format 2; none in 1
	CreatedAt    time.Time `json:"created_at"`
	Badger       string    `json:"badger"`
	Schema       uint32    `json:"schema"`
	Version      uint64    `json:"version"` // the newest badger version in the stream
	StreamBytes  int64     `json:"stream_bytes"`
	StreamSHA256 string    `json:"stream_sha256"`
}

func badgerVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/dgraph-io/badger/v4" {
				return m.Version
			}
		}
	}
	return "v4"
}

// ctxWriter stops a backup whose caller went away: badger's stream takes
// no context.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// backupPaceStep is how many bytes a paced backup reads between looks at
// the clock: small enough that its sleeps stay short (16 ms at 16 MiB/s),
// large enough that reading the clock costs nothing.
const backupPaceStep = 256 << 10

// backupPacer holds a backup's read of the store to a rate. A backup
// reads and decompresses every table, and on two cores an unpaced one
// takes both from the decisions for as long as it runs (on a store of
// 2.8 M decisions: about 100 MB/s with the server at 1.7–1.8 cores, and
// p99 at 200 declarations a second from 10 ms to 1 s). It paces at the source,
// badger's producer, through Stream.ChooseKey, which Stream.Backup leaves
// alone: pacing the writer instead would let the producer run up to 32
// buffers of 16 MB ahead at full speed before it blocked. The price is a
// longer backup, holding its snapshot (and the versions compaction must
// keep for it) for that time.
type backupPacer struct {
	ctx   context.Context
	rate  int64 // bytes a second; 0 reads as fast as it can
	start time.Time
	read  int64 // bytes of the keys chosen so far
	next  int64 // read at the next look at the clock
}

// choose is the stream's ChooseKey: every key is taken; the producer
// sleeps while it is ahead of the rate. The clock is the wall clock on
// purpose: pacing is about real seconds of CPU. A cancelled backup stops
// sleeping and fails at its next write (ctxWriter).
func (p *backupPacer) choose(item *badger.Item) bool {
	if p.rate <= 0 {
		return true
	}
	p.read += item.EstimatedSize()
	if p.read < p.next {
		return true
	}
	p.next = p.read + backupPaceStep
	due := p.start.Add(time.Duration(float64(p.read) / float64(p.rate) * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.ctx.Done():
		}
	}
	return true
}

// Backup writes a backup file (header, manifest, stream) of everything
// committed before it begins to w. tmpDir holds the stream while it is
// hashed ("" is the system's temporary directory): the manifest goes
// first and w cannot be rewound. rate bounds how fast the store is read,
// in bytes a second (0: unbounded; see backupPacer). It returns the
// manifest and the bytes written to w.
func (d *DB) Backup(ctx context.Context, w io.Writer, tmpDir string, rate int64) (BackupManifest, int64, error) {
	if err := d.enter(ctx); err != nil {
		return BackupManifest{}, 0, err
	}
	defer d.leave()
	tmp, err := os.CreateTemp(tmpDir, ".ktcn-backup-stream-*")
	if err != nil {
		return BackupManifest{}, 0, fmt.Errorf("store: backup: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	m, err := d.writeStream(ctx, tmp, rate)
	if err != nil {
		return BackupManifest{}, 0, err
	}
	head, err := json.Marshal(m)
	if err != nil {
		return BackupManifest{}, 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return BackupManifest{}, 0, fmt.Errorf("store: backup: %w", err)
	}
	out := &countWriter{w: ctxWriter{ctx: ctx, w: w}}
	if _, err := io.WriteString(out, backupMagic+string(head)+"\n"); err != nil {
		return BackupManifest{}, out.n, fmt.Errorf("store: backup: write: %w", err)
	}
	if _, err := io.Copy(out, tmp); err != nil {
		return BackupManifest{}, out.n, fmt.Errorf("store: backup: write: %w", err)
	}
	d.log.Info().Int64("bytes", out.n).Uint64("version", m.Version).Str("sha256", m.StreamSHA256).Msg("store: backup written")
	return m, out.n, nil
}

// manifestSlot is the length of the manifest line (newline included) of
// a backup written into a file: the manifest, known only once the stream
// is written, goes back into this slot, padded with spaces (JSON
// whitespace, so every reader reads it as it reads an unpadded one).
// Ours take about 300 bytes.
const manifestSlot = 1 << 10

// BackupTo writes a backup file into f, from its start, without staging
// the stream elsewhere: the stream follows a manifest slot, which is
// filled once the stream's length and SHA-256 are known. f is neither
// synced nor closed. rate is as for Backup.
func (d *DB) BackupTo(ctx context.Context, f io.WriteSeeker, rate int64) (BackupManifest, int64, error) {
	if err := d.enter(ctx); err != nil {
		return BackupManifest{}, 0, err
	}
	defer d.leave()
	if _, err := f.Seek(int64(len(backupMagic)+manifestSlot), io.SeekStart); err != nil {
		return BackupManifest{}, 0, fmt.Errorf("store: backup: %w", err)
	}
	m, err := d.writeStream(ctx, f, rate)
	if err != nil {
		return BackupManifest{}, 0, err
	}
	head, err := json.Marshal(m)
	if err != nil {
		return BackupManifest{}, 0, err
	}
	if len(head) >= manifestSlot {
		return BackupManifest{}, 0, fmt.Errorf("store: backup: a manifest of %d bytes does not fit its %d-byte slot", len(head), manifestSlot)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return BackupManifest{}, 0, fmt.Errorf("store: backup: %w", err)
	}
	line := string(head) + strings.Repeat(" ", manifestSlot-1-len(head)) + "\n"
	if _, err := io.WriteString(f, backupMagic+line); err != nil {
		return BackupManifest{}, 0, fmt.Errorf("store: backup: write: %w", err)
	}
	n := int64(len(backupMagic)+manifestSlot) + m.StreamBytes
	d.log.Info().Int64("bytes", n).Uint64("version", m.Version).Str("sha256", m.StreamSHA256).Msg("store: backup written")
	return m, n, nil
}

// writeStream writes the compressed stream of one snapshot to w and
// returns the manifest that describes it.
func (d *DB) writeStream(ctx context.Context, w io.Writer, rate int64) (BackupManifest, error) {
	m := BackupManifest{Format: BackupFormat, Compression: backupCompression, CreatedAt: time.Now().UTC(), Badger: badgerVersion(), Schema: SchemaVersion}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	// One encoder goroutine at the fastest level: the backup is paced to
	// leave the decisions their cores, and its compression must too.
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return m, fmt.Errorf("store: backup: %w", err)
	}
	defer zw.Close()
	bw := bufio.NewWriterSize(ctxWriter{ctx: ctx, w: zw}, 1<<20)
	st := d.db.NewStream()
	st.LogPrefix = "store.Backup"
	st.NumGo = 1 // one producer, one snapshot: see above
	pacer := &backupPacer{ctx: ctx, rate: rate, start: time.Now()}
	st.ChooseKey = pacer.choose
	if m.Version, err = st.Backup(bw, 0); err != nil {
		// A caller that went away fails the stream's writes (ctxWriter),
		// and badger then cancels its own producers: which of the two
		// errors it returns is a race, so the caller's own cause is
		// reported.
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return m, fmt.Errorf("store: backup: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return m, fmt.Errorf("store: backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return m, fmt.Errorf("store: backup: %w", err)
	}
	m.StreamBytes, m.StreamSHA256 = cw.n, hex.EncodeToString(h.Sum(nil))
	return m, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readManifest reads a backup's header and manifest.
func readManifest(br *bufio.Reader) (BackupManifest, error) {
	var m BackupManifest
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return m, errors.New("not a ktcn backup file (bad header)")
	}
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) || len(line) > maxManifest {
			return m, fmt.Errorf("backup manifest unreadable: %w", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("backup manifest: %w", err)
	}
	switch {
	case m.Format < 1 || m.Format > BackupFormat:
		return m, fmt.Errorf("backup format %d: this build reads formats 1 to %d", m.Format, BackupFormat)
	case m.Format == 1 && m.Compression != "", m.Format == 2 && m.Compression != backupCompression:
		return m, fmt.Errorf("backup format %d with compression %q: unknown", m.Format, m.Compression)
	case m.Schema < oldestSchema || m.Schema > SchemaVersion:
		// An older backup restores as it was taken; Open upgrades it.
		return m, fmt.Errorf("%w: the backup is at version %d, this build reads versions %d to %d", ErrSchemaVersion, m.Schema, oldestSchema, SchemaVersion)
	case m.StreamBytes < 0 || len(m.StreamSHA256) != 2*sha256.Size:
		return m, errors.New("backup manifest: no stream length or SHA-256")
	}
	return m, nil
}

// checkStream copies the stream after the manifest to w and checks its
// length and SHA-256 against m.
func checkStream(br io.Reader, m BackupManifest, w io.Writer) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), br)
	if err != nil {
		return fmt.Errorf("read backup: %w", err)
	}
	if n != m.StreamBytes {
		return fmt.Errorf("%w: the stream is %d bytes, the manifest says %d", ErrBackupChecksum, n, m.StreamBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.StreamSHA256 {
		return fmt.Errorf("%w: the stream's SHA-256 is %s, the manifest says %s", ErrBackupChecksum, got, m.StreamSHA256)
	}
	return nil
}

// VerifyBackup checks a backup file's header, manifest, stream length and
// SHA-256, and returns its manifest.
func VerifyBackup(r io.Reader) (BackupManifest, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	m, err := readManifest(br)
	if err != nil {
		return m, fmt.Errorf("store: verify backup: %w", err)
	}
	if err := checkStream(br, m, io.Discard); err != nil {
		return m, fmt.Errorf("store: verify backup: %w", err)
	}
	return m, nil
}

// Restore loads the backup read from r into a new store at dir, which must
// not exist or be an empty directory (opts.Dir; opts as for Open). The whole stream is read to a
// temporary file beside dir and its length and SHA-256 checked against the
// manifest before anything is written to dir; a backup that fails the
// check leaves dir as it was. The restored store opens with Open.
func Restore(ctx context.Context, r io.Reader, opts Options) (BackupManifest, error) {
	dir := opts.Dir
	if dir == "" || opts.InMemory {
		return BackupManifest{}, errors.New("store: restore: no target directory")
	}
	created, err := checkEmptyDir(dir)
	if err != nil {
		return BackupManifest{}, fmt.Errorf("store: restore into %s: %w", dir, err)
	}
	cleanup := func() {
		if created {
			_ = os.RemoveAll(dir)
		} else if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	m, err := readManifest(br)
	if err != nil {
		return m, fmt.Errorf("store: restore: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(filepath.Clean(dir)), ".ktcn-restore-*")
	if err != nil {
		return m, fmt.Errorf("store: restore: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	if err := checkStream(ctxReader{ctx: ctx, r: br}, m, tmp); err != nil {
		return m, fmt.Errorf("store: restore: %w; nothing restored", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return m, fmt.Errorf("store: restore: %w", err)
	}
	// Only now is dir written to.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return m, fmt.Errorf("store: restore: %w", err)
	}
	bo, err := badgerOptions(opts)
	if err != nil {
		cleanup()
		return m, err
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		cleanup()
		return m, fmt.Errorf("store: restore: open %s: %w", dir, err)
	}
	var stream io.Reader = tmp
	if m.Compression == backupCompression {
		zr, err := zstd.NewReader(tmp)
		if err != nil {
			_ = bdb.Close()
			cleanup()
			return m, fmt.Errorf("store: restore: %w", err)
		}
		defer zr.Close()
		stream = zr
	}
	if err := bdb.Load(ctxReader{ctx: ctx, r: stream}, 256); err != nil {
		_ = bdb.Close()
		cleanup()
		return m, fmt.Errorf("store: restore: load: %w", err)
	}
	if err := bdb.Sync(); err != nil {
		_ = bdb.Close()
		cleanup()
		return m, fmt.Errorf("store: restore: sync: %w", err)
	}
	if err := bdb.Close(); err != nil {
		cleanup()
		return m, fmt.Errorf("store: restore: close: %w", err)
	}
	// Open checks the schema version the backup carries and rebuilds what
	// it derives on first open.
	db, err := Open(opts)
	if err != nil {
		cleanup()
		return m, fmt.Errorf("store: restore: the restored store does not open: %w", err)
	}
	if err := db.Close(); err != nil {
		return m, err
	}
	return m, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// checkEmptyDir accepts a directory that does not exist (created reports
// that Restore will create it) or is empty.
func checkEmptyDir(dir string) (created bool, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if len(ents) > 0 {
		return false, fmt.Errorf("%w: it holds %d entries (%s, ...)", ErrRestoreTarget, len(ents), ents[0].Name())
	}
	return false, nil
}

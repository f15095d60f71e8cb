// Package siem appends the controller's security events to a file, one JSON
// object per line (apiv1.AuditRecord), for a SIEM agent (Filebeat, Fluent
// Bit, Splunk forwarder, ...) to collect. Security events are the device
// events of severity "security" (sideload blocked, tamper detected,
// quarantined, integrity failure, sideload installed, refused local access)
// and the audit entries of kind "security" (logins that failed, sideload
// policy changes, publisher keys, tokens, refused device messages).
//
// Delivery is at least once. The exporter reads what is already committed
// to SQLite (so a line never describes an event the database could still
// lose), appends it, fsyncs the file, and only then records how far it got
// in a cursor file next to the log (FILE.cursor: the last event seq and
// audit id written). A crash between the append and the cursor update
// writes those lines again after the restart, so a consumer may see a line
// twice; deduplicate on origin with id (audit) or device_id with event_id
// (device). Nothing committed is skipped: an exporter that was down, or a
// log path used for the first time, catches up from the cursor (from the
// beginning of the history for a new path).
//
// The file is opened for each batch (O_APPEND), so rotating it by renaming
// (logrotate's default) needs no signal: the next batch creates a new file.
package siem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
)

// Source reads committed security events in commit order; *store.DB
// implements it.
type Source interface {
	SecurityEventsAfter(ctx context.Context, seq int64, limit int) ([]store.SeqEvent, error)
	AuditAfter(ctx context.Context, id int64, kind string, limit int) ([]store.AuditEntry, error)
}

var _ Source = (*store.DB)(nil)

// Options configure an Exporter.
type Options struct {
	// Path is the JSON-lines file to append to. Required; created (0600)
	// if missing, with its directory.
	Path string
	// Source is the database. Required.
	Source Source
	// Interval is how often the exporter looks for new events when Notify
	// is not called (audit entries are picked up this way). Zero: 1s.
	Interval time.Duration
	// Logger. Nil: slog.Default().
	Logger *slog.Logger
}

// Cursor is how far the exporter got: the last device event (seq) and
// audit entry (id) written and synced.
type Cursor struct {
	EventSeq int64 `json:"event_seq"`
	AuditID  int64 `json:"audit_id"`
}

// Exporter appends security events to the file. Create it with New, run it
// with Run; Notify may be called from any goroutine.
type Exporter struct {
	opts   Options
	log    *slog.Logger
	cursor Cursor // owned by Run (and New)
	wake   chan struct{}
}

// batch is how many events of each origin one read takes.
const batch = 500

// New checks that the file can be appended to and reads the cursor.
func New(opts Options) (*Exporter, error) {
	if opts.Path == "" || opts.Source == nil {
		return nil, errors.New("siem: Path and Source are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("siem log %s: %w", opts.Path, err)
	}
	f, err := openLog(opts.Path)
	if err != nil {
		return nil, err
	}
	f.Close()
	e := &Exporter{opts: opts, log: opts.Logger.With("component", "siem"), wake: make(chan struct{}, 1)}
	raw, err := os.ReadFile(cursorPath(opts.Path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A new log: export the whole history.
	case err != nil:
		return nil, fmt.Errorf("siem log: read cursor: %w", err)
	default:
		if err := json.Unmarshal(raw, &e.cursor); err != nil {
			return nil, fmt.Errorf("siem log: cursor %s is corrupt (%v); delete it to export the whole history again", cursorPath(opts.Path), err)
		}
	}
	return e, nil
}

func cursorPath(p string) string { return p + ".cursor" }

func openLog(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("siem log: %w (check --siem-log and the directory's permissions)", err)
	}
	return f, nil
}

// Notify says that an event was committed: export soon. It never blocks.
func (e *Exporter) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Cursor returns how far the exporter got. Call it only when Run is not
// running (tests).
func (e *Exporter) Cursor() Cursor { return e.cursor }

// Run exports until ctx is done, then makes one last pass and returns nil.
// A failing pass (a full disk, a locked database) is logged and retried at
// the next interval; nothing is skipped.
func (e *Exporter) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	failing := false
	for {
		err := e.Flush(context.WithoutCancel(ctx))
		switch {
		case err != nil && !failing:
			e.log.Error("security events not exported yet; retrying", "path", e.opts.Path, "err", err)
			failing = true
		case err == nil && failing:
			e.log.Info("security event export resumed", "path", e.opts.Path)
			failing = false
		}
		select {
		case <-ctx.Done():
			if err := e.Flush(context.WithoutCancel(ctx)); err != nil {
				e.log.Error("security events not exported at shutdown; they are exported at the next start", "err", err)
			}
			return nil
		case <-e.wake:
		case <-t.C:
		}
	}
}

// Flush exports everything committed after the cursor. Run calls it; it
// must not be called concurrently.
func (e *Exporter) Flush(ctx context.Context) error {
	for {
		evs, err := e.opts.Source.SecurityEventsAfter(ctx, e.cursor.EventSeq, batch)
		if err != nil {
			return err
		}
		audits, err := e.opts.Source.AuditAfter(ctx, e.cursor.AuditID, store.AuditSecurity, batch)
		if err != nil {
			return err
		}
		if len(evs) == 0 && len(audits) == 0 {
			return nil
		}
		next := e.cursor
		var buf []byte
		for _, ev := range evs {
			buf = appendRecord(buf, apiv1.RecordOfEvent(apiv1.Event{DeviceID: ev.DeviceID, ID: ev.ID, At: ev.At, ReceivedAt: ev.ReceivedAt,
				Kind: ev.Kind, Severity: ev.Severity, Message: ev.Message, Details: ev.Details}))
			next.EventSeq = ev.Seq
		}
		for _, a := range audits {
			buf = appendRecord(buf, apiv1.RecordOfAudit(apiv1.AuditEntry{ID: a.ID, At: a.At, Actor: a.Actor, ActorID: a.ActorID, Action: a.Action,
				Target: a.Target, Detail: a.Detail, Source: a.Source, Kind: a.Kind}))
			next.AuditID = a.ID
		}
		if err := appendSynced(e.opts.Path, buf); err != nil {
			return err
		}
		if err := writeCursor(cursorPath(e.opts.Path), next); err != nil {
			// The lines are written; without the cursor they are written
			// again next time (at least once).
			return err
		}
		e.cursor = next
		if len(evs) < batch && len(audits) < batch {
			return nil
		}
	}
}

func appendRecord(buf []byte, r apiv1.AuditRecord) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		// Strings, times and a string map: Marshal cannot fail.
		panic(fmt.Sprintf("siem: encode record: %v", err))
	}
	return append(append(buf, b...), '\n')
}

func appendSynced(p string, b []byte) error {
	f, err := openLog(p)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("siem log: append to %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("siem log: sync %s: %w", p, err)
	}
	return f.Close()
}

// writeCursor replaces the cursor file atomically (write, sync, rename).
func writeCursor(p string, c Cursor) error {
	b, _ := json.Marshal(c)
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("siem log: write cursor: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("siem log: write cursor: %w", err)
	}
	return nil
}

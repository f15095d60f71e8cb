package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Audit entry kinds.
const (
	AuditChange   = "change"
	AuditSecurity = "security"
	AuditAccess   = "access"
)

// AuditFilter selects audit entries for ListAudit. Zero fields do not filter.
type AuditFilter struct {
	Since time.Time // entries at or after this time
	Kind  string    // "change", "security" or "access"
	// Limit caps the number of entries returned (the newest ones); 0 means
	// DefaultListLimit.
	Limit int
}

// AppendAudit adds an entry that records no change (a refused request, a
// login, a malformed device message) to the audit log and returns it with
// its ID (and At, when it was zero: now). Actor, Action and Kind are
// required. A change records its entry through DB.Change instead, in the
// change's own transaction.
func (db *DB) AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if err := checkAudit(e); err != nil {
		return AuditEntry{}, err
	}
	if e.At.IsZero() {
		e.At = db.now()
	}
	e.At = fromUnixNano(unixNano(e.At))
	err := db.update(ctx, func(tx *sql.Tx) error {
		var err error
		e.ID, err = insertAudit(ctx, tx, &e)
		return err
	})
	if err != nil {
		return AuditEntry{}, err
	}
	return e, nil
}

func checkAudit(e AuditEntry) error {
	if e.Actor == "" || e.Action == "" {
		return fmt.Errorf("%w: audit entry needs an actor and an action", ErrInvalid)
	}
	switch e.Kind {
	case AuditChange, AuditSecurity, AuditAccess:
	default:
		return fmt.Errorf("%w: audit entry kind %q: want change, security or access", ErrInvalid, e.Kind)
	}
	return nil
}

// insertAudit writes e, after cleanAudit has bounded and escaped its text
// fields in place: every audit entry, whichever path writes it, passes here.
func insertAudit(ctx context.Context, tx *sql.Tx, e *AuditEntry) (int64, error) {
	cleanAudit(e)
	res, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, action, target, detail, source, kind, change_seq, state_before, state_after, actor_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		unixNano(e.At), e.Actor, e.Action, e.Target, e.Detail, e.Source, e.Kind, e.Seq, e.Before, e.After, e.ActorID)
	if err != nil {
		return 0, fmt.Errorf("append audit entry %s: %w", e.Action, err)
	}
	return res.LastInsertId()
}

// ListAudit returns the audit entries the filter selects, newest first.
func (db *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, unixNano(f.Since))
	}
	q := `SELECT ` + auditColumns + ` FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY at DESC, id DESC LIMIT ?"
	args = append(args, limitOrDefault(f.Limit))
	out, err := db.queryAudit(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return out, nil
}

// auditColumns are the columns queryAudit scans, in order.
const auditColumns = "id, at, actor, action, target, detail, source, kind, change_seq, state_before, state_after, actor_id"

// queryAudit runs a query selecting auditColumns and scans the entries.
func (db *DB) queryAudit(ctx context.Context, q string, args ...any) ([]AuditEntry, error) {
	return queryAll(ctx, db.reader(ctx), scanAudit, q, args...)
}

func scanAudit(row interface{ Scan(...any) error }) (AuditEntry, error) {
	var (
		e  AuditEntry
		at int64
	)
	err := row.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Source, &e.Kind, &e.Seq, &e.Before, &e.After, &e.ActorID)
	e.At = fromUnixNano(at)
	return e, err
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// sideloadSchema is migration 4: per-group overrides of the global sideload
// policy (the global one is the "sideload" setting). An override goes with
// its group: deleting the group deletes it, so a group created later under
// the same name does not inherit a forgotten override.
const sideloadSchema = `
CREATE TABLE sideload_overrides (
	group_name TEXT PRIMARY KEY REFERENCES device_groups (name) ON DELETE CASCADE,
	policy     TEXT NOT NULL CHECK (policy IN ('allow', 'deny')),
	set_by     TEXT NOT NULL DEFAULT '',
	set_at     INTEGER NOT NULL
) STRICT;
`

// Sideload policies of an override (and of the global setting).
const (
	SideloadAllow = "allow"
	SideloadDeny  = "deny"
)

// SideloadOverride is a device group's override of the global sideload
// policy.
type SideloadOverride struct {
	Group  string
	Policy string // SideloadAllow or SideloadDeny
	SetBy  string
	SetAt  time.Time
}

// SetSideloadOverride sets group's override (replacing one it has). An
// unknown group is ErrNotFound, a policy other than allow or deny
// ErrInvalid; either way nothing changes.
func (db *DB) SetSideloadOverride(ctx context.Context, o SideloadOverride) (SideloadOverride, error) {
	if o.Policy != SideloadAllow && o.Policy != SideloadDeny {
		return SideloadOverride{}, fmt.Errorf("%w: sideload policy %q: want allow or deny", ErrInvalid, o.Policy)
	}
	if o.SetAt.IsZero() {
		o.SetAt = db.now()
	}
	o.SetAt = fromUnixNano(unixNano(o.SetAt))
	err := db.update(ctx, func(tx *sql.Tx) error {
		if _, err := getGroup(ctx, tx, o.Group); err != nil {
			return fmt.Errorf("set sideload override: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sideload_overrides (group_name, policy, set_by, set_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (group_name) DO UPDATE SET policy = excluded.policy, set_by = excluded.set_by, set_at = excluded.set_at`,
			o.Group, o.Policy, o.SetBy, unixNano(o.SetAt))
		if err != nil {
			return fmt.Errorf("set sideload override of %s: %w", o.Group, err)
		}
		return nil
	})
	if err != nil {
		return SideloadOverride{}, err
	}
	return o, nil
}

// DeleteSideloadOverride removes group's override, so its devices follow
// the global policy again. It reports whether there was one; an unknown
// group is ErrNotFound.
func (db *DB) DeleteSideloadOverride(ctx context.Context, group string) (bool, error) {
	var had bool
	err := db.update(ctx, func(tx *sql.Tx) error {
		if _, err := getGroup(ctx, tx, group); err != nil {
			return fmt.Errorf("remove sideload override: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sideload_overrides WHERE group_name = ?`, group)
		if err != nil {
			return fmt.Errorf("remove sideload override of %s: %w", group, err)
		}
		n, _ := res.RowsAffected()
		had = n > 0
		return nil
	})
	return had, err
}

// ListSideloadOverrides returns every override, by group name.
func (db *DB) ListSideloadOverrides(ctx context.Context) ([]SideloadOverride, error) {
	return listSideloadOverrides(ctx, db.reader(ctx))
}

func listSideloadOverrides(ctx context.Context, q queryer) ([]SideloadOverride, error) {
	rows, err := q.QueryContext(ctx, `SELECT group_name, policy, set_by, set_at FROM sideload_overrides ORDER BY group_name`)
	if err != nil {
		return nil, fmt.Errorf("list sideload overrides: %w", err)
	}
	defer rows.Close()
	var out []SideloadOverride
	for rows.Next() {
		var (
			o  SideloadOverride
			at int64
		)
		if err := rows.Scan(&o.Group, &o.Policy, &o.SetBy, &at); err != nil {
			return nil, fmt.Errorf("list sideload overrides: %w", err)
		}
		o.SetAt = fromUnixNano(at)
		out = append(out, o)
	}
	return out, rows.Err()
}

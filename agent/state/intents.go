package state

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// Intents: record, then act. A part of the agent that is about to change
// files (the sideload guard moving a directory to quarantine, an install
// step) first records its plan, with the events it will report, in one
// transaction; then it acts; then CompleteIntent queues the events and
// forgets the plan, in one transaction. A crash in between leaves the plan,
// and at start-up the owner finishes it (OpenIntents), so no action is
// taken without its report and none is reported twice.

// RecordIntent stores a plan of the given kind under id (unique; recording
// the same id again keeps the first plan).
func (s *Store) RecordIntent(ctx context.Context, kind, id string, plan []byte) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO intents (id, kind, plan, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			id, kind, plan, fmtTime(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("record %s intent: %w", kind, err)
	}
	return nil
}

// UpdateIntent replaces the plan of the open intent id (an install moving
// to its next step records that step before acting on it). Updating an
// intent that is gone changes nothing.
func (s *Store) UpdateIntent(ctx context.Context, id string, plan []byte) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE intents SET plan = ? WHERE id = ?`, plan, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("update intent %s: %w", id, err)
	}
	return nil
}

// CompleteIntent queues events in the outbox and removes the intent id, in
// one transaction. Completing an intent that is gone queues nothing (it was
// completed before), so a retry cannot report twice.
func (s *Store) CompleteIntent(ctx context.Context, id string, events []protocol.Event) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM intents WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		for _, ev := range events {
			if err := s.enqueue(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("complete intent %s: %w", id, err)
	}
	return nil
}

// OpenIntents returns the plans of the given kind not yet completed, by id,
// oldest first.
func (s *Store) OpenIntents(ctx context.Context, kind string) ([]Intent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, plan FROM intents WHERE kind = ? ORDER BY created_at, id`, kind)
	if err != nil {
		return nil, fmt.Errorf("read open %s intents: %w", kind, err)
	}
	defer rows.Close()
	var out []Intent
	for rows.Next() {
		var in Intent
		if err := rows.Scan(&in.ID, &in.Plan); err != nil {
			return nil, fmt.Errorf("read open %s intents: %w", kind, err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// Intent is a recorded plan not yet completed.
type Intent struct {
	ID   string
	Plan []byte
}

package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/edgewarden/edgewarden/protocol/access"
)

// RuleError is a change refused because it would break a rule every
// commit keeps (see Change.checkRules). It wraps ErrConflict (the last
// administrator) or ErrForbidden (escalation by taking away).
type RuleError struct {
	Rule string // "last-admin" or "no-escalation"
	kind error
	msg  string
}

func (e *RuleError) Error() string   { return e.msg }
func (e *RuleError) Unwrap() error   { return e.kind }
func (e *RuleError) Is(t error) bool { return t == e.kind }

// checkRules holds, before the change commits, the rules no endpoint may
// break, whatever store methods it called:
//
//   - someone can always administer: if, before the change, an active user
//     held every controller action on the controller, one still does after;
//   - no escalation by taking away: a user whose rights the change reduces
//     (disabled, deleted, a grant or team membership gone, a role that
//     gives less) held nothing the acting user does not hold. When the
//     only rights lost went with a deleted object (a group, device or app
//     and the grants on it), only those must be held by the actor.
//
// The state before is the committed state (the read pool: the change holds
// the only write connection, so nothing else committed meanwhile); the
// state after is the change's transaction.
func (c *Change) checkRules(ctx context.Context) error {
	now := c.db.now()
	before, after := &Snapshot{}, &Snapshot{}
	if err := readAccess(ctx, c.db.read, before, now); err != nil {
		return fmt.Errorf("check change rules: %w", err)
	}
	if err := readAccess(ctx, c.tx, after, now); err != nil {
		return fmt.Errorf("check change rules: %w", err)
	}
	eb, err := access.Compile(before.AccessInput())
	if err != nil {
		return fmt.Errorf("check change rules: compile access before the change: %w", err)
	}
	ea, err := access.Compile(after.AccessInput())
	if err != nil {
		return fmt.Errorf("check change rules: compile access after the change: %w", err)
	}
	if admins := eb.Administrators(); len(admins) > 0 && len(ea.Administrators()) == 0 {
		return &RuleError{Rule: "last-admin", kind: ErrConflict, msg: fmt.Sprintf(
			"refused: %s would leave no active user who can administer the controller (every controller action, globally); %s %s the last. Give another active user the admin role globally first (`edgewarden grants create --role admin --user NAME`)",
			c.Audit.Action, strings.Join(admins, ", "), isOrAre(admins))}
	}
	afterUsers := make(map[string]User, len(after.Users))
	for _, u := range after.Users {
		afterUsers[u.Name] = u
	}
	var placement *Placement
	resource := func(s access.Scope) access.Resource {
		if placement == nil {
			p, err := c.db.beforePlacement(ctx)
			if err != nil {
				// Without the hierarchy only direct and global grants
				// count: stricter, never looser.
				p = Placement{Hierarchy: access.NewHierarchy(nil)}
			}
			placement = &p
		}
		return placement.Resource(s)
	}
	for _, u := range before.Users {
		if u.Name == c.Audit.Actor {
			continue
		}
		held := eb.Holdings(u.Name)
		if len(held) == 0 {
			continue
		}
		au, still := afterUsers[u.Name]
		full := !still || (u.State == UserActive && au.State != UserActive)
		lost := lostHoldings(held, ea.Holdings(u.Name))
		if !full && len(lost) == 0 {
			continue
		}
		check := held
		if !full {
			if check, err = c.withoutCascades(ctx, lost, after); err != nil {
				return err
			}
			if len(check) > 0 {
				check = held // a grant taken from the user, not gone with its object
			} else {
				check = lost
			}
		}
		if err := access.CheckNoEscalationByRemoval(eb, c.Audit.Actor, u.Name, check, resource); err != nil {
			return &RuleError{Rule: "no-escalation", kind: ErrForbidden, msg: "refused: " + err.Error()}
		}
	}
	return nil
}

// lostHoldings returns the holdings of before that after lacks (a grant
// gone, or giving fewer actions).
func lostHoldings(before, after []access.Holding) []access.Holding {
	key := func(h access.Holding) string {
		s := make([]string, len(h.Actions))
		for i, a := range h.Actions {
			s[i] = string(a)
		}
		return h.Grant.ID + "\x00" + strings.Join(s, ",")
	}
	have := make(map[string]bool, len(after))
	for _, h := range after {
		have[key(h)] = true
	}
	var out []access.Holding
	for _, h := range before {
		if !have[key(h)] {
			out = append(out, h)
		}
	}
	return out
}

// withoutCascades returns the holdings of lost that did not go with the
// object their scope names (a deleted group, device or app).
func (c *Change) withoutCascades(ctx context.Context, lost []access.Holding, after *Snapshot) ([]access.Holding, error) {
	grants := make(map[string]bool, len(after.Grants))
	for _, g := range after.Grants {
		grants[g.ID] = true
	}
	var out []access.Holding
	for _, h := range lost {
		if !grants[h.Grant.ID] && h.Grant.Scope.Kind != access.ScopeGlobal {
			err := scopeExists(ctx, c.tx, h.Grant.Scope)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("check change rules: %w", err)
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// beforePlacement is the committed group hierarchy and device placement.
func (db *DB) beforePlacement(ctx context.Context) (Placement, error) {
	snap, err := db.AccessSnapshot(ctx)
	if err != nil {
		return Placement{}, err
	}
	m, err := snap.Membership()
	if err != nil {
		return Placement{}, err
	}
	return snap.Placement(m), nil
}

func isOrAre(names []string) string {
	if len(names) == 1 {
		return "is"
	}
	return "are"
}

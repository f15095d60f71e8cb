package apitest

import (
	"context"

	"github.com/edgewarden/edgewarden/controller/authz"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

var _ authz.Source = (*Store)(nil)

// AccessSnapshot implements authz.Source, so the API authorizes requests
// against the fake's devices, groups and users: AdminUser holds the
// built-in admin role globally, and other users hold what AddGrant gave
// them.
func (s *Store) AccessSnapshot(ctx context.Context) (*store.Snapshot, error) {
	devs, err := s.ListDevices(ctx)
	if err != nil {
		return nil, err
	}
	groups, err := s.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	users, err := s.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	grants := append([]store.Grant{{
		Grant:     access.Grant{ID: "g-admin", Subject: access.UserSubject(AdminUser), Role: access.RoleAdmin, Scope: access.Global()},
		CreatedBy: "system",
	}}, s.grants...)
	return &store.Snapshot{Devices: devs, Groups: groups, Users: users, Grants: grants, Settings: map[string]string{}}, nil
}

// ChangeSeq implements authz.Source. The fake keeps no sequence over all
// its writes, so it returns a new number on every call: views built from it
// are never reused.
func (s *Store) ChangeSeq(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq, nil
}

// AddGrant gives a user or team a role on a scope.
func (s *Store) AddGrant(g access.Grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants = append(s.grants, store.Grant{Grant: g, CreatedBy: AdminUser})
}

package auth

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
)

// UserStore is what CreateFirstAdmin needs from the controller's store.
type UserStore interface {
	CountUsers(ctx context.Context) (int, error)
	CreateUser(ctx context.Context, u store.User) error
}

var userNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// ValidateUserName reports whether name can name a user: 1-64 characters
// a-z, 0-9, '.', '_', '@' or '-', starting with a letter or digit.
func ValidateUserName(name string) error {
	if !userNamePattern.MatchString(name) {
		return fmt.Errorf("invalid user name %q: use 1-64 characters a-z, 0-9, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	return nil
}

// CreateFirstAdmin creates the first user of a fresh controller, active,
// with password. It refuses when any user exists. (The grant that makes
// this user an admin is the access model's business.) It is meant for
// `edgewarden-controller init`, which runs alone; it does not guard against
// a concurrent CreateUser.
func CreateFirstAdmin(ctx context.Context, s UserStore, name, password string, now time.Time) error {
	if err := ValidateUserName(name); err != nil {
		return err
	}
	n, err := s.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("create first admin: count users: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("create first admin: the controller already has %d user(s); the first admin exists", n)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return fmt.Errorf("create first admin %s: %w", name, err)
	}
	if err := s.CreateUser(ctx, store.User{Name: name, PasswordHash: hash, State: "active", CreatedAt: now.UTC()}); err != nil {
		return fmt.Errorf("create first admin %s: %w", name, err)
	}
	return nil
}

package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/edgewarden/edgewarden/agent/statelock"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/store"
)

// LockFile is the data directory's lock: held by `serve` for its whole
// run and by offline commands (recover-admin), so they never overlap.
const LockFile = "controller.lock"

var dataLock = statelock.Owner{File: LockFile, Program: "edgewarden-controller", DirFlag: "--data"}

// lockDataDir takes the data directory's lock without waiting.
func lockDataDir(dir string) (*statelock.Lock, error) {
	return statelock.AcquireAs(dir, dataLock)
}

// RecoverOptions configure RecoverAdmin.
type RecoverOptions struct {
	DataDir string // required
	User    string // the admin to re-activate or create; "" means "admin"
}

// Recovered is what RecoverAdmin did.
type Recovered struct {
	store.AdminRecovery
	// Password is the new password of the user, shown once.
	Password string
}

// RecoverAdmin is break-glass recovery for a controller nobody can
// administer any more: with the controller stopped (it takes the data
// directory's lock, so it fails while `serve` runs) and the local root
// account (whoever can write the data directory), it makes the user an
// active admin with a new random password. The change is audited as
// security at once and again when the controller next starts, so the
// recovery reaches the SIEM export and cannot pass unnoticed.
func RecoverAdmin(ctx context.Context, opts RecoverOptions) (Recovered, error) {
	if opts.User == "" {
		opts.User = "admin"
	}
	dbPath := filepath.Join(opts.DataDir, DBFile)
	if _, err := os.Stat(dbPath); err != nil {
		return Recovered{}, fmt.Errorf("open %s: %w; is --data the controller's data directory?", dbPath, err)
	}
	lock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return Recovered{}, err
	}
	defer lock.Release()
	db, err := store.Open(ctx, dbPath)
	if err != nil {
		return Recovered{}, err
	}
	defer db.Close()
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	out := Recovered{Password: base64.RawURLEncoding.EncodeToString(b)}
	hash, err := auth.HashPassword(out.Password)
	if err != nil {
		return Recovered{}, err
	}
	by := "local"
	if u, err := user.Current(); err == nil {
		by = "local:" + u.Username
	}
	e := store.AuditEntry{Actor: by, Action: "user.recover-admin", Target: opts.User, Source: "recover-admin", Kind: store.AuditSecurity,
		Detail: "break-glass recovery with the controller stopped: active, new password, admin role globally"}
	_, err = db.Change(ctx, e, func(ctx context.Context, c *store.Change) error {
		c.DirtyAll() // users reach devices' access policies
		out.AdminRecovery, err = db.RecoverAdmin(ctx, opts.User, hash, by)
		c.After = out.AdminRecovery
		return err
	})
	if err != nil {
		return Recovered{}, fmt.Errorf("recover admin %s: %w", opts.User, err)
	}
	return out, nil
}

// auditRecovery writes, when the controller starts, a security audit
// entry for a break-glass recovery made while it was stopped.
func (s *Server) auditRecovery(ctx context.Context) error {
	e := store.AuditEntry{Actor: "system", Action: "controller.admin-recovered", Kind: store.AuditSecurity}
	errNone := errors.New("no recovery")
	_, err := s.db.Change(ctx, e, func(ctx context.Context, c *store.Change) error {
		rec, ok, err := s.db.TakeAdminRecovery(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errNone // nothing to audit: write nothing
		}
		c.Audit.Target = rec.User
		how := "re-activated (was " + rec.Was + ")"
		if rec.Created {
			how = "created"
		}
		c.Audit.Detail = fmt.Sprintf("while the controller was stopped, %s ran recover-admin at %s: user %s %s with the admin role; if this was not planned, treat it as a break-in",
			rec.By, time.Unix(0, rec.At).UTC().Format(time.RFC3339), rec.User, how)
		c.After = rec
		return nil
	})
	if errors.Is(err, errNone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit the admin recovery: %w", err)
	}
	s.log.Warn("admin recovered while the controller was stopped; audited as security", "action", e.Action)
	s.securityStored()
	return nil
}

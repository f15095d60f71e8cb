package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/edgewarden/edgewarden/controller/client"
)

// config is the CLI's session file.
type config struct {
	Controller string    `json:"controller"`
	CA         string    `json:"ca,omitempty"` // absolute path of the controller CA file
	User       string    `json:"user"`
	Token      string    `json:"token"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// configPath is $EDGEWARDEN_CONFIG, or ~/.config/edgewarden/config.json.
func (a *app) configPath() (string, error) {
	if p := a.getenv("EDGEWARDEN_CONFIG"); p != "" {
		return p, nil
	}
	dir := a.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := a.getenv("HOME")
		if home == "" {
			return "", errors.New("cannot find the config file: neither EDGEWARDEN_CONFIG nor HOME is set")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "edgewarden", "config.json"), nil
}

// loadConfig reads the config and requires a session in it.
func (a *app) loadConfig() (*config, string, error) {
	c, path, err := a.readConfig()
	if err != nil {
		return nil, path, err
	}
	if c.Controller == "" || c.Token == "" {
		return nil, path, fmt.Errorf("config %s holds no session (logged out?): run 'edgewarden login'", path)
	}
	return c, path, nil
}

// readConfig reads the config, which may hold no session (after a logout
// it keeps the controller, CA and user for the next login).
func (a *app) readConfig() (*config, string, error) {
	path, err := a.configPath()
	if err != nil {
		return nil, "", err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, fmt.Errorf("not logged in (no %s): run 'edgewarden login --controller URL --ca FILE --user NAME --password-stdin'", path)
	}
	if err != nil {
		return nil, path, fmt.Errorf("read config: %w", err)
	}
	var c config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, path, fmt.Errorf("config %s is unreadable (%v): run 'edgewarden login' again", path, err)
	}
	return &c, path, nil
}

// saveConfig writes c to path with mode 0600, atomically.
func saveConfig(path string, c *config) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save config: %w", err)
	}
	if _, err := f.Write(append(raw, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save config %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	return nil
}

// client returns an API client for the saved session.
func (a *app) client() (*client.Client, error) {
	c, _, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{BaseURL: c.Controller, CAFile: c.CA, Token: c.Token})
}

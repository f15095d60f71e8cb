package pki

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/protocol"
)

func keyID(k ed25519.PrivateKey) string { return protocol.KeyID(k.Public().(ed25519.PublicKey)) }

func TestSigningKeyRotation(t *testing.T) {
	a, dir := newAuthority(t)
	if a.NextSigningKey() != nil || a.PrevSigningKey() != nil || len(a.ControllerKeys()) != 1 {
		t.Fatalf("fresh identity has rotation keys")
	}
	oldID := keyID(a.SigningKey())

	// Promote without a next key is refused and changes nothing.
	if _, _, err := PromoteSigningKey(dir); err == nil || !strings.Contains(err.Error(), "rotate-signing-key") {
		t.Fatalf("promote without next key: %v", err)
	}
	if b, _ := Load(dir); keyID(b.SigningKey()) != oldID || b.PrevSigningKey() != nil {
		t.Fatal("refused promote changed the keys")
	}

	nextID, err := CreateNextSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, NextSigningKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("next key file: %v, mode %v", err, info.Mode())
	}
	before, _ := os.ReadFile(filepath.Join(dir, NextSigningKeyFile))
	// A second create is refused and keeps the first next key.
	if _, err := CreateNextSigningKey(dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, NextSigningKeyFile)); !bytes.Equal(before, after) {
		t.Fatal("refused create overwrote the next key")
	}

	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.NextSigningKey() == nil || keyID(b.NextSigningKey()) != nextID || keyID(b.SigningKey()) != oldID || b.PrevSigningKey() != nil {
		t.Fatalf("after create: current %s next %v", keyID(b.SigningKey()), b.NextSigningKey())
	}
	if ks := b.ControllerKeys(); len(ks) != 2 || ks[0].KeyID != oldID || ks[1].KeyID != nextID {
		t.Errorf("ControllerKeys during announcement = %+v, want current then next", ks)
	}

	cur, prev, err := PromoteSigningKey(dir)
	if err != nil || cur != nextID || prev != oldID {
		t.Fatalf("promote = %s, %s, %v; want %s, %s", cur, prev, err, nextID, oldID)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if keyID(c.SigningKey()) != nextID || c.PrevSigningKey() == nil || keyID(c.PrevSigningKey()) != oldID || c.NextSigningKey() != nil {
		t.Fatalf("after promote: current %s prev %v next %v", keyID(c.SigningKey()), c.PrevSigningKey(), c.NextSigningKey())
	}
	if ks := c.ControllerKeys(); len(ks) != 1 || ks[0].KeyID != nextID {
		t.Errorf("ControllerKeys after promotion = %+v, want only the new key", ks)
	}
	for _, name := range []string{SigningKeyFile, PrevSigningKeyFile} {
		if info, err := os.Stat(filepath.Join(dir, name)); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Promoting again without a new next key is refused.
	if _, _, err := PromoteSigningKey(dir); err == nil {
		t.Fatal("second promote accepted")
	}
}

func TestLoadRefusesReadableRotationKeys(t *testing.T) {
	_, dir := newAuthority(t)
	if _, err := CreateNextSigningKey(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, NextSigningKeyFile)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load with a world-readable next key: %v", err)
	}
	if _, _, err := PromoteSigningKey(dir); err == nil {
		t.Fatal("promote with a world-readable next key accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, PrevSigningKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("refused promote left %s: %v", PrevSigningKeyFile, err)
	}
}

func TestLoadRefusesBadNextKey(t *testing.T) {
	_, dir := newAuthority(t)
	if err := os.WriteFile(filepath.Join(dir, NextSigningKeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), NextSigningKeyFile) {
		t.Fatalf("Load with a garbage next key: %v", err)
	}
}

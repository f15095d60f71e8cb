package server

import (
	"fmt"
	"path/filepath"

	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// TokenKeyFile holds the Ed25519 key that signs operator tokens (`edgewarden
// tokens issue`); it is created on first start. Its public key travels in
// every device's document (DesiredState.TokenKeys), so agents verify tokens
// offline.
const TokenKeyFile = "token.key"

// loadTokenSigner loads (creating if needed) the operator-token key.
func loadTokenSigner(dataDir string) (*optoken.Signer, error) {
	key, err := auth.LoadOrCreateKey(filepath.Join(dataDir, TokenKeyFile))
	if err != nil {
		return nil, fmt.Errorf("operator token key: %w", err)
	}
	s, err := optoken.NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("operator token key %s: %w", filepath.Join(dataDir, TokenKeyFile), err)
	}
	return s, nil
}

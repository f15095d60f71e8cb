package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// PayloadTypeDesired is the DSSE payload type of a signed DesiredState.
const PayloadTypeDesired = "application/vnd.edgewarden.desired-state+json"

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse),
// the signing format used by in-toto and sigstore. Payload holds the exact
// bytes that were signed; they are never re-encoded before verification.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"` // base64 in JSON
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature in an Envelope. KeyID names the key (see KeyID).
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"` // base64 in JSON
}

// KeyID returns the id by which envelopes and documents name an Ed25519 key:
// the first 16 bytes of the SHA-256 of the raw public key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// PAE is DSSE's pre-authentication encoding: what is actually signed.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// SignEnvelope signs payload with an Ed25519 key and returns the encoded
// envelope. Ed25519 signatures are deterministic, so the same key and payload
// always give the same bytes (the golden vectors rely on this).
func SignEnvelope(payloadType string, payload []byte, key ed25519.PrivateKey) ([]byte, error) {
	return SignEnvelopeKeys(payloadType, payload, key)
}

// SignEnvelopeKeys signs payload with each key, in order, and returns the
// encoded envelope with one signature per key: during a key rotation, a
// verifier that trusts any one of the keys accepts it. It needs one to
// MaxSignatures keys.
func SignEnvelopeKeys(payloadType string, payload []byte, keys ...ed25519.PrivateKey) ([]byte, error) {
	if len(keys) == 0 || len(keys) > MaxSignatures {
		return nil, fmt.Errorf("sign envelope: %d keys, want 1 to %d", len(keys), MaxSignatures)
	}
	msg := PAE(payloadType, payload)
	env := Envelope{PayloadType: payloadType, Payload: payload}
	for _, key := range keys {
		if len(key) != ed25519.PrivateKeySize {
			return nil, errors.New("sign envelope: not an Ed25519 private key")
		}
		env.Signatures = append(env.Signatures, Signature{
			KeyID: KeyID(key.Public().(ed25519.PublicKey)),
			Sig:   ed25519.Sign(key, msg),
		})
	}
	return json.Marshal(env)
}

// DecodeEnvelope parses an encoded envelope, enforcing MaxEnvelopeBytes and
// MaxSignatures. It does not verify anything.
func DecodeEnvelope(raw []byte) (*Envelope, error) {
	if len(raw) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: envelope is %d bytes, limit %d", ErrTooLarge, len(raw), MaxEnvelopeBytes)
	}
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if env.PayloadType == "" || len(env.Payload) == 0 {
		return nil, fmt.Errorf("%w: envelope has no payload type or no payload", ErrMalformed)
	}
	if len(env.Signatures) == 0 {
		return nil, fmt.Errorf("%w: envelope is unsigned", ErrSignature)
	}
	if len(env.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("%w: envelope has %d signatures, limit %d", ErrMalformed, len(env.Signatures), MaxSignatures)
	}
	return &env, nil
}

// VerifyEnvelope checks that at least one signature on env was made over its
// payload by one of the trusted keys (indexed by KeyID) and that the payload
// type is the expected one. It returns the id of the key that verified.
// It is a pure function: no I/O, no clock.
func VerifyEnvelope(env *Envelope, payloadType string, trusted map[string]ed25519.PublicKey) (keyID string, err error) {
	if env.PayloadType != payloadType {
		return "", fmt.Errorf("%w: payload type %q, want %q", ErrMalformed, env.PayloadType, payloadType)
	}
	if len(trusted) == 0 {
		return "", fmt.Errorf("%w: no trusted controller keys configured; enroll the device first", ErrSignature)
	}
	msg := PAE(env.PayloadType, env.Payload)
	for _, s := range env.Signatures {
		key, ok := trusted[s.KeyID]
		if !ok {
			continue
		}
		if ed25519.Verify(key, msg, s.Sig) {
			return s.KeyID, nil
		}
	}
	return "", fmt.Errorf("%w: no signature verifies against a trusted controller key (%d keys trusted)", ErrSignature, len(trusted))
}

// Rejection reasons. Every error returned by the decoders and CheckDesired
// wraps exactly one of these; Reason maps it to a short stable code for
// status reports and metrics.
var (
	ErrTooLarge    = errors.New("message too large")
	ErrMalformed   = errors.New("malformed message")
	ErrSignature   = errors.New("bad signature")
	ErrWrongDevice = errors.New("document is for another device")
	ErrReplay      = errors.New("replayed or stale document")
	ErrExpired     = errors.New("document expired")
)

// Reason returns the stable code of a rejection error: "too_large",
// "malformed", "bad_signature", "wrong_device", "replay", "expired", or
// "other" for anything else.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrSignature):
		return "bad_signature"
	case errors.Is(err, ErrWrongDevice):
		return "wrong_device"
	case errors.Is(err, ErrReplay):
		return "replay"
	case errors.Is(err, ErrExpired):
		return "expired"
	}
	return "other"
}

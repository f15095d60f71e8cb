package localapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// Why Authorize refused, besides the optoken.Err* token errors.
var (
	// ErrNoPolicy: no document has been applied, or the one in force could
	// not be compiled for local access.
	ErrNoPolicy = errors.New("no policy")
	// ErrPolicyExpired: the document in force has expired.
	ErrPolicyExpired = errors.New("policy expired")
	// ErrNoToken: the request carried no operator token.
	ErrNoToken = errors.New("no operator token")
	// ErrDenied: the token is valid but no grant allows the action.
	ErrDenied = errors.New("denied")
)

// Grant is an authorization: who, and the policy that allowed it.
type Grant struct {
	Claims   optoken.Claims
	Decision access.Decision
	Policy   *apply.Policy
}

// Authorize decides whether the holder of token may perform action on this
// device now, offline: the policy in force must exist and not have expired,
// the token must verify against its token keys and not be revoked, and a
// grant of that policy must allow the action for the token's user. It
// returns an error wrapping ErrNoPolicy, ErrPolicyExpired, ErrNoToken,
// ErrDenied or an optoken.Err* value, with a message for the user; with
// ErrDenied the Grant carries the claims and the decision.
func (s *Server) Authorize(token string, action access.Action) (Grant, error) {
	p := s.opts.Policy()
	if p == nil {
		return Grant{}, fmt.Errorf("%w: this device has not received a policy from the controller yet, so all local access is denied; check that the agent is enrolled and reaches the controller (edgewarden-agent status)", ErrNoPolicy)
	}
	if p.Access == nil || p.Tokens == nil {
		return Grant{Policy: p}, fmt.Errorf("%w: this agent cannot use the access policy of revision %d, so all local access is denied until the controller sends a new document; check the agent log", ErrNoPolicy, p.Revision)
	}
	now := s.opts.Now()
	if p.Expired(now) {
		return Grant{Policy: p}, fmt.Errorf("%w: the device's policy (revision %d) expired at %s and no newer one has arrived, so all local access is denied; check the device's connection to the controller and its clock", ErrPolicyExpired, p.Revision, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if token == "" {
		return Grant{Policy: p}, fmt.Errorf("%w: pass --token or set EDGEWARDEN_TOKEN (get one on the controller with `edgewarden tokens issue`)", ErrNoToken)
	}
	c, err := p.Tokens.Verify(token, now)
	if err != nil {
		return Grant{Policy: p}, err
	}
	d := p.Access.Decide(c.Subject, action, p.Device)
	g := Grant{Claims: c, Decision: d, Policy: p}
	if !d.Allowed {
		return g, fmt.Errorf("%w: %s", ErrDenied, d.Reason)
	}
	return g, nil
}

// statusOf maps an Authorize error to an HTTP status: 401 when the token
// is missing or not valid, else 403.
func statusOf(err error) int {
	for _, e := range []error{ErrNoToken, optoken.ErrMalformed, optoken.ErrUnknownKey, optoken.ErrAlgorithm,
		optoken.ErrSignature, optoken.ErrClaims, optoken.ErrExpired, optoken.ErrNotYet, optoken.ErrRevoked} {
		if errors.Is(err, e) {
			return http.StatusUnauthorized
		}
	}
	return http.StatusForbidden
}

// reasonOf is the short reason code of a refusal, for events.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrNoPolicy):
		return "no_policy"
	case errors.Is(err, ErrPolicyExpired):
		return "policy_expired"
	case errors.Is(err, ErrNoToken):
		return "no_token"
	case errors.Is(err, optoken.ErrRevoked):
		return "token_revoked"
	case errors.Is(err, optoken.ErrExpired):
		return "token_expired"
	case errors.Is(err, ErrDenied):
		return "no_grant"
	case errors.Is(err, errBanned):
		return "sideload_banned"
	case statusOf(err) == http.StatusUnauthorized:
		return "invalid_token"
	}
	return "denied"
}

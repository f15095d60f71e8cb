package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// Enrollment token limits.
const (
	// EnrollTokenPrefix starts every enrollment token secret.
	EnrollTokenPrefix = "ewt_"
	// DefaultEnrollTokenTTL applies when a request gives no TTL.
	DefaultEnrollTokenTTL = 24 * time.Hour
	// MaxEnrollTokenTTL is the longest validity a token may have.
	MaxEnrollTokenTTL = 365 * 24 * time.Hour
	// MaxEnrollTokenUses is the most devices one token may enroll.
	MaxEnrollTokenUses = 100000
	// maxCSRBytes bounds the CSR in an enrollment request.
	maxCSRBytes = 16 << 10
)

// HashEnrollToken returns what the store keeps of an enrollment token
// secret: the hex SHA-256 of it.
func HashEnrollToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (a *API) createEnrollToken(w http.ResponseWriter, r *http.Request) error {
	var req apiv1.CreateEnrollTokenRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Uses < 0 || req.Uses > MaxEnrollTokenUses {
		return errorf(http.StatusBadRequest, "uses must be between 1 and %d (0 means 1), not %d", MaxEnrollTokenUses, req.Uses)
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(MaxEnrollTokenTTL/time.Second) {
		return errorf(http.StatusBadRequest, "ttl_seconds must be between 1 and %d (0 means 24 hours), not %d", int64(MaxEnrollTokenTTL/time.Second), req.TTLSeconds)
	}
	if ttl == 0 {
		ttl = DefaultEnrollTokenTTL
	}
	p, _ := principalOf(r)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("create enrollment token: %w", err)
	}
	now := a.now().UTC().Truncate(time.Second)
	token := EnrollTokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	var saved store.EnrollToken
	err := a.change(r, store.AuditChange, "enroll-token.create", "", "", func(ctx context.Context, c *store.Change) error {
		var err error
		saved, err = a.opts.Store.CreateEnrollToken(ctx, store.EnrollToken{
			ID:        "et_" + randomHex(8),
			Hash:      HashEnrollToken(token),
			Groups:    nonNil(req.Groups),
			Labels:    nonNilMap(req.Labels),
			LabelKeys: nonNil(req.LabelKeys),
			MaxUses:   req.Uses,
			ExpiresAt: now.Add(ttl),
			Approval:  req.Approval,
			CreatedAt: now,
			CreatedBy: p.User,
		})
		if err != nil {
			return err
		}
		v := enrollTokenView(saved)
		c.Audit.Target = v.ID
		c.Audit.Detail = fmt.Sprintf("uses=%d expires=%s approval=%t groups=%s labels=%s label_keys=%s",
			v.MaxUses, v.ExpiresAt.Format(time.RFC3339), v.Approval, strings.Join(v.Groups, ","), formatLabels(v.Labels), strings.Join(v.LabelKeys, ","))
		c.After = v
		return nil
	})
	if err != nil {
		return err
	}
	tok := enrollTokenView(saved)
	tok.Token = token // the only time the secret leaves the controller
	return writeJSON(w, http.StatusCreated, tok)
}

func (a *API) listEnrollTokens(w http.ResponseWriter, r *http.Request) error {
	toks, err := a.opts.Store.ListEnrollTokens(r.Context())
	if err != nil {
		return err
	}
	out := make([]apiv1.EnrollToken, 0, len(toks))
	for _, t := range toks {
		out = append(out, enrollTokenView(t))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) revokeEnrollToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	err := a.change(r, store.AuditChange, "enroll-token.revoke", id, "", func(ctx context.Context, c *store.Change) error {
		return a.opts.Store.RevokeEnrollToken(ctx, id)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func enrollTokenView(t store.EnrollToken) apiv1.EnrollToken {
	return apiv1.EnrollToken{
		ID:        t.ID,
		Groups:    nonNil(t.Groups),
		Labels:    nonNilMap(t.Labels),
		LabelKeys: nonNil(t.LabelKeys),
		MaxUses:   t.MaxUses,
		Used:      t.Used,
		ExpiresAt: t.ExpiresAt,
		Approval:  t.Approval,
		Revoked:   t.Revoked,
		CreatedAt: t.CreatedAt,
		CreatedBy: t.CreatedBy,
	}
}

// enroll enrolls a device. The order keeps a failure from leaving anything
// behind: check the CSR and the token, sign the certificate (nothing is
// stored by signing), then let the store check the token again and create
// the device in one transaction. Only then is the certificate returned.
func (a *API) enroll(w http.ResponseWriter, r *http.Request) error {
	var req protocol.EnrollRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Token == "" {
		return errorf(http.StatusBadRequest, "token is required: pass the enrollment token an admin created with `edgewarden enroll-tokens create`")
	}
	if req.CSRPEM == "" {
		return errorf(http.StatusBadRequest, "csr_pem is required")
	}
	deviceID, err := checkCSR([]byte(req.CSRPEM))
	if err != nil {
		return err
	}
	hash := HashEnrollToken(req.Token)
	if _, err := a.checkEnrollToken(r, hash); err != nil {
		a.auditAs(r, "device:"+deviceID, store.AuditSecurity, "device.enroll-refused", deviceID, err.Error())
		return err
	}
	certPEM, serial, err := a.opts.PKI.SignDeviceCSR([]byte(req.CSRPEM), deviceID, a.opts.DeviceCertValidity)
	if err != nil {
		return fmt.Errorf("enroll %s: sign certificate: %w", deviceID, err)
	}
	var dev store.Device
	err = a.change(r, store.AuditChange, "device.enroll", deviceID, "", func(ctx context.Context, c *store.Change) error {
		c.Audit.Actor = "device:" + deviceID
		c.DirtyDevices(deviceID)
		d, tok, err := a.opts.Store.Enroll(ctx, hash, store.NewDevice{
			ID:         deviceID,
			Labels:     req.Labels,
			CertSerial: serial,
			At:         a.now().UTC(),
		})
		if err != nil {
			return err
		}
		dev = d
		c.Audit.Detail = fmt.Sprintf("token=%s state=%s serial=%s labels=%s", tok.ID, dev.State, serial, formatLabels(dev.Labels))
		if len(dev.RequestedLabels) > 0 {
			c.Audit.Detail += " not_applied=" + formatLabels(dev.RequestedLabels) + " (keys the token does not allow)"
		}
		return nil
	})
	if err != nil {
		a.auditAs(r, "device:"+deviceID, store.AuditSecurity, "device.enroll-refused", deviceID, err.Error())
		return err
	}
	return writeJSON(w, http.StatusOK, protocol.EnrollResponse{
		DeviceID:        dev.ID,
		CertificatePEM:  string(certPEM),
		CAPEM:           string(a.opts.PKI.CAPEM()),
		ControllerKeys:  nonNil(a.opts.PKI.ControllerKeys()),
		MQTTURL:         a.opts.MQTTURL,
		HTTPURL:         a.opts.HTTPURL,
		PendingApproval: dev.State == apiv1.DevicePending,
	})
}

// checkEnrollToken finds the token with hash and says clearly why it cannot
// be used, if it cannot. The store checks again when it enrolls (in its
// transaction); this check only gives the clear message and avoids signing
// a certificate for a request that will be refused.
func (a *API) checkEnrollToken(r *http.Request, hash string) (store.EnrollToken, error) {
	toks, err := a.opts.Store.ListEnrollTokens(r.Context())
	if err != nil {
		return store.EnrollToken{}, err
	}
	i := slices.IndexFunc(toks, func(t store.EnrollToken) bool { return t.Hash == hash })
	if i < 0 {
		return store.EnrollToken{}, errorf(http.StatusUnauthorized, "enrollment token is not valid (mistyped, or never issued by this controller); ask an admin for a new one")
	}
	t := toks[i]
	now := a.now()
	switch {
	case t.Revoked:
		return t, errorf(http.StatusForbidden, "enrollment token %s was revoked; ask an admin for a new one", t.ID)
	case !now.Before(t.ExpiresAt):
		return t, errorf(http.StatusForbidden, "enrollment token %s is expired (expired at %s); ask an admin for a new one", t.ID, t.ExpiresAt.UTC().Format(time.RFC3339))
	case t.Used >= t.MaxUses:
		return t, errorf(http.StatusForbidden, "enrollment token %s is used up (%d of %d uses); ask an admin for a new one", t.ID, t.Used, t.MaxUses)
	}
	return t, nil
}

// checkCSR parses a PEM CSR, checks its self-signature and key type, and
// returns the device id it asks for (its common name).
func checkCSR(csrPEM []byte) (string, error) {
	if len(csrPEM) > maxCSRBytes {
		return "", errorf(http.StatusBadRequest, "csr_pem is %d bytes, limit %d", len(csrPEM), maxCSRBytes)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return "", errorf(http.StatusBadRequest, "csr_pem is not a PEM-encoded CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", errorf(http.StatusBadRequest, "csr_pem cannot be parsed: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return "", errorf(http.StatusBadRequest, "the certificate request's signature does not verify: %v", err)
	}
	switch k := csr.PublicKey.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errorf(http.StatusBadRequest, "the certificate request's key is ECDSA %s; use P-256 or Ed25519", k.Curve.Params().Name)
		}
	default:
		return "", errorf(http.StatusBadRequest, "the certificate request's key is %T; use ECDSA P-256 or Ed25519", k)
	}
	id := csr.Subject.CommonName
	if err := protocol.ValidateDeviceID(id); err != nil {
		return "", errorf(http.StatusBadRequest, "the certificate request's common name is the device id: %v", err)
	}
	return id, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func formatLabels(m map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + m[k])
	}
	return b.String()
}

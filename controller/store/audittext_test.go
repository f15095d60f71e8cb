package store

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

// Whatever path writes it, an audit entry holds no control characters and
// no unbounded text: a login name or event path from the network cannot
// forge log lines or terminal escapes in `audit ls`, the console or a SIEM.
func TestAuditTextBoundedAndEscaped(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	evil := "mallory\n2026-12-02 admin user.delete bob\x1b]0;owned\x07\u202e"
	e, err := db.AppendAudit(ctx, AuditEntry{Actor: evil, Action: "user.login-failed", Target: strings.Repeat("x", 10000),
		Detail: "bad\xffbyte " + strings.Repeat("ü", 10000), Source: "203.0.113.9:4444", Kind: AuditSecurity})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.ListAudit(ctx, AuditFilter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("audit %+v %v", got, err)
	}
	for _, s := range []string{got[0].Actor, got[0].Target, got[0].Detail, e.Actor} {
		if strings.ContainsAny(s, "\n\x1b\x07\u202e") || !utf8.ValidString(s) {
			t.Errorf("control characters or invalid UTF-8 stored: %q", s)
		}
	}
	if !strings.HasPrefix(got[0].Actor, `mallory\n2026`) {
		t.Errorf("actor %q: want the newline shown escaped", got[0].Actor)
	}
	if len(got[0].Target) > maxAuditName || len(got[0].Detail) > maxAuditDetail || !strings.HasSuffix(got[0].Target, "(clipped)") {
		t.Errorf("target %d bytes, detail %d bytes: not bounded", len(got[0].Target), len(got[0].Detail))
	}
	if !strings.HasPrefix(got[0].Detail, `bad\xffbyte ü`) {
		t.Errorf("detail %q", got[0].Detail[:20])
	}
}

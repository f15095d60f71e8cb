package store

import "github.com/edgewarden/edgewarden/protocol/textsafe"

// Bounds of an audit entry's text fields. Names that arrive from the
// network (a user name at login, a device id, a path in a device event)
// reach the audit log, which is read in terminals, consoles and SIEMs:
// they are bounded and their control characters escaped here, once, for
// every entry.
const (
	maxAuditName   = 256      // actor, target, source
	maxAuditDetail = 8 << 10  // detail
	maxAuditState  = 64 << 10 // state before / after (JSON)
)

// cleanAudit bounds e's text fields and escapes control characters in
// them (JSON state keeps its own escaping and is only bounded).
func cleanAudit(e *AuditEntry) {
	e.Actor = textsafe.Clip(textsafe.Escape(e.Actor, false), maxAuditName)
	e.Target = textsafe.Clip(textsafe.Escape(e.Target, false), maxAuditName)
	e.Source = textsafe.Clip(textsafe.Escape(e.Source, false), maxAuditName)
	e.Detail = textsafe.Clip(textsafe.Escape(e.Detail, false), maxAuditDetail)
	e.Before = textsafe.Clip(e.Before, maxAuditState)
	e.After = textsafe.Clip(e.After, maxAuditState)
}

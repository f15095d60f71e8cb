package protocol

// Event severities (Event.Severity). Security events go to the SIEM log and
// are the last an agent drops from a full outbox.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeveritySecurity = "security"
)

// Event kinds (Event.Kind) an agent reports. A controller stores unknown
// kinds as they come, so an older controller keeps working with a newer agent.
const (
	// EventDocumentRejected (warning): the agent refused a desired-state
	// document; Details carry the revision and the reason code.
	EventDocumentRejected = "document_rejected"
	// EventSideloadBlocked (security): something that is not a managed app
	// appeared in the apps directory while sideloading is banned.
	EventSideloadBlocked = "sideload_blocked"
	// EventTamper (security): a managed app's files changed (content, added,
	// removed, type, symlink target, permissions).
	EventTamper = "tamper_detected"
	// EventQuarantined (security): an app's files were moved to quarantine.
	EventQuarantined = "quarantined"
	// EventIntegrity (security): a managed app could not be verified
	// (unreadable, its manifest missing or its signature refused).
	EventIntegrity = "integrity_failure"
	// EventLocalAccessDenied (security): the device's local API refused a
	// request.
	EventLocalAccessDenied = "local_access_denied"
	// EventLocalAction (info): an operator acted through the local API
	// (start, stop, install).
	EventLocalAction = "local_action"
	// EventSideloadInstalled (security): an operator installed a local
	// package through the local API, with the operator in Details.
	EventSideloadInstalled = "sideload_installed"
	// EventAppInstalled (info): an assigned app version was installed and
	// started; Details carry app, version and previous (the version it
	// replaced, if any). Reported once per install, even across a crash.
	EventAppInstalled = "app_installed"
	// EventAppInstallInterrupted (warning): the agent stopped during an
	// install (Details: app, version, step); the previous version stayed
	// current and the install is retried.
	EventAppInstallInterrupted = "app_install_interrupted"
)

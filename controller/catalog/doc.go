// Package catalog is checkpoint 1 of app integrity, on the controller: it
// verifies a publisher's cosign signature over an app manifest with cosign's
// own code (VerifyManifest), signs manifests with cosign key files (Sign,
// behind `edgewarden apps sign`), keeps artifacts in a content-addressed
// store (Store), and checks an uploaded app version end to end before
// anything of it is kept (Catalog.Begin, Push.Artifact, Push.Commit).
//
// The agent verifies the same signatures without cosign
// (protocol/manifest); a parity test holds the two to the same verdicts.
package catalog

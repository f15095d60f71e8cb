package server

import (
	"github.com/edgewarden/edgewarden/controller/siem"
)

// newSIEM creates the security-event exporter of Options.SIEMLog (nil when
// none is configured).
func (s *Server) newSIEM() (*siem.Exporter, error) {
	if s.opts.SIEMLog == "" {
		return nil, nil
	}
	return siem.New(siem.Options{Path: s.opts.SIEMLog, Source: s.db, Logger: s.log})
}

// securityStored tells the exporter that a security event was committed.
func (s *Server) securityStored() {
	if s.siem != nil {
		s.siem.Notify()
	}
}

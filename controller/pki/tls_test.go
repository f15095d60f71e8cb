package pki

import (
	"crypto/tls"

	"testing"
)

// The controller's TLS servers speak TLS 1.3, or TLS 1.2 with forward-secret
// AEAD suites only: a client offering only CBC suites, or only TLS 1.1, is
// refused at the handshake.
func TestServerTLSRefusesWeakClients(t *testing.T) {
	a, _ := newAuthority(t)
	for name, cfg := range map[string]*tls.Config{"https": a.HTTPSConfig(), "mqtt": a.MQTTServerConfig()} {
		cfg.ClientAuth = tls.NoClientCert // the suites are what is tested here
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
			}
		}()
		dial := func(c *tls.Config) (*tls.ConnectionState, error) {
			c.RootCAs = a.CACertPool()
			c.ServerName = "localhost"
			conn, err := tls.Dial("tcp", ln.Addr().String(), c)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			st := conn.ConnectionState()
			return &st, nil
		}
		if st, err := dial(&tls.Config{}); err != nil || st.Version != tls.VersionTLS13 {
			t.Errorf("%s: default client: %v, %+v; want TLS 1.3", name, err, st)
		}
		if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}); err != nil {
			t.Errorf("%s: TLS 1.2 with AES-GCM refused: %v", name, err)
		}
		if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}); err == nil {
			t.Errorf("%s: TLS 1.2 with only CBC suites was accepted", name)
		}
		if _, err := dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
			t.Errorf("%s: TLS 1.1 was accepted", name)
		}
		ln.Close()
	}
}

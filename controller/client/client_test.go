package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/client"
)

func TestErrorsCarryServerMessage(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c, err := client.New(client.Options{BaseURL: s.URL + "/", CAFile: s.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Login(context.Background(), "admin", "wrong-password")
	if err == nil || err.Error() != "wrong user name or password" || !client.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("got %v, want the server's message verbatim with status 401", err)
	}
	if _, err := c.ListDevices(context.Background()); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
}

func TestNonJSONErrorAndTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream broke", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := client.New(client.Options{BaseURL: srv.URL, HTTPClient: srv.Client()})
	_, err := c.FleetStatus(context.Background())
	if !client.IsStatus(err, http.StatusBadGateway) || !strings.Contains(err.Error(), "upstream broke") {
		t.Fatalf("got %v", err)
	}
	// Without the server's CA the TLS handshake fails, clearly.
	c, _ = client.New(client.Options{BaseURL: srv.URL})
	_, err = c.FleetStatus(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "reach the controller") {
		t.Fatalf("untrusted server: %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	for _, o := range []client.Options{
		{},
		{BaseURL: "ftp://x"},
		{BaseURL: "https://"},
		{BaseURL: "https://127.0.0.1:1", CAFile: filepath.Join(dir, "missing.pem")},
		{BaseURL: "https://127.0.0.1:1", CAFile: notPEM},
	} {
		if _, err := client.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/console"
)

// BenchmarkOverview renders the fleet overview of 1,000 devices for the
// admin: the session check, six navigation decisions and the fleet
// status, device and group listings, all through the API in process.
func BenchmarkOverview(b *testing.B) {
	benchPage(b, 1000, "/")
}

// BenchmarkDevicePage renders one device's page among 1,000 (what htmx
// polls every 2 s while the page is open).
func BenchmarkDevicePage(b *testing.B) {
	benchPage(b, 1000, "/devices/d-0500")
}

func benchPage(b *testing.B, devices int, path string) {
	s := apitest.NewServer(b, nil)
	anon, err := client.New(client.Options{BaseURL: s.URL, CAFile: s.CAFile})
	if err != nil {
		b.Fatal(err)
	}
	login, err := anon.Login(ctx, apitest.AdminUser, apitest.AdminPassword)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(client.Options{BaseURL: s.URL, CAFile: s.CAFile, Token: login.Token})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Uses: devices})
	if err != nil {
		b.Fatal(err)
	}
	for i := range devices {
		if _, err := anon.Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(b, fmt.Sprintf("d-%04d", i))}); err != nil {
			b.Fatal(err)
		}
	}
	con, err := console.New(console.Options{API: s.API.Handler()})
	if err != nil {
		b.Fatal(err)
	}
	h := con.Handler()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(&http.Cookie{Name: "__Host-edgewarden-session", Value: login.Token})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
	}
}

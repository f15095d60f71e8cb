package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
)

// BenchmarkAuthenticatedRequest: GET /api/v1/whoami with a session, with
// no ended session stored and with 10,000 (logouts not yet expired). Every
// request looks its token id up among the ended sessions: one indexed
// read, so logouts piling up do not slow requests.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{0, 10000} {
		b.Run(fmt.Sprintf("ended=%d", n), func(b *testing.B) {
			s := apitest.Start(b, apitest.Options{})
			db := s.SQLite(b)
			exp := time.Now().Add(time.Hour)
			_, err := db.Change(ctx, store.AuditEntry{Actor: "bench", Action: "bench.end-sessions", Kind: store.AuditAccess}, func(ctx context.Context, c *store.Change) error {
				for i := range n {
					if err := db.EndSession(ctx, fmt.Sprintf("s-%06d", i), "u-bench", exp); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			anon, err := client.New(client.Options{BaseURL: s.URL, CAFile: s.CAFile})
			if err != nil {
				b.Fatal(err)
			}
			resp, err := anon.Login(ctx, apitest.AdminUser, apitest.AdminPassword)
			if err != nil {
				b.Fatal(err)
			}
			cl, _ := client.New(client.Options{BaseURL: s.URL, CAFile: s.CAFile, Token: resp.Token})
			for b.Loop() {
				if _, err := cl.WhoAmI(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

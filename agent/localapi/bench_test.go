package localapi_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/localapi/localwire"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// latencies times each call of fn and reports the p99 as a metric.
func latencies(b *testing.B, fn func(i int)) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		fn(i)
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkAuthorizeCached is a local authorize decision with a token the
// verifier has seen: cache lookup, revocation and expiry check, grant
// evaluation. Target: p99 under 20 µs.
func BenchmarkAuthorizeCached(b *testing.B) {
	f := newFixture(b)
	f.publish(f.doc(baseInput()))
	tok := f.token("alice", time.Hour)
	if _, err := f.srv.Authorize(tok, access.DeviceAppOperate); err != nil {
		b.Fatal(err)
	}
	latencies(b, func(int) {
		if _, err := f.srv.Authorize(tok, access.DeviceAppOperate); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkAuthorizeFirstSight is a decision on a token never seen before:
// the signature is verified. Target: under 200 µs.
func BenchmarkAuthorizeFirstSight(b *testing.B) {
	f := newFixture(b)
	f.publish(f.doc(baseInput()))
	toks := make([]string, b.N)
	for i := range toks {
		var err error
		toks[i], _, err = f.signer.Issue(optoken.IssueOptions{Subject: "alice", Now: f.clock(), TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
	}
	latencies(b, func(i int) {
		if _, err := f.srv.Authorize(toks[i], access.DeviceAppOperate); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkAuthorizeHTTP is the whole round trip a local service sees: GET
// /v1/authorize over the unix socket (keep-alive), cached token.
func BenchmarkAuthorizeHTTP(b *testing.B) {
	f := newFixture(b)
	f.publish(f.doc(baseInput()))
	tok := f.token("alice", time.Hour)
	req, err := http.NewRequest("GET", "http://agent"+localwire.PathAuthorize+"?action=device:app-operate", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	latencies(b, func(int) {
		resp, err := f.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	})
}

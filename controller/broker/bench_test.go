package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/protocol"
)

// BenchmarkRetainedFanout measures the time from the controller publishing
// one retained ~2 KB desired document per device until every device has
// received its own, over mutual TLS at QoS 1 with one connection per device.
//
// The fleet size is EDGEWARDEN_BENCH_DEVICES (default 500). For the 10k
// figure in DESIGN.md (clients and broker share the process, so raise the
// file limit first):
//
//	ulimit -n 65536
//	EDGEWARDEN_BENCH_DEVICES=10000 go test -run '^$' -bench RetainedFanout -benchtime 3x ./controller/broker/
func BenchmarkRetainedFanout(b *testing.B) {
	n := 500
	if v := os.Getenv("EDGEWARDEN_BENCH_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("EDGEWARDEN_BENCH_DEVICES=%q: want a positive number", v)
		}
	}
	f := startBroker(b, nil)

	var received atomic.Int64
	done := make(chan struct{}, 1)
	var target atomic.Int64
	onMsg := func(paho.Client, paho.Message) {
		if received.Add(1) == target.Load() {
			done <- struct{}{}
		}
	}

	// Connect the fleet, 32 handshakes at a time.
	ids := make([]string, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ids[i] = fmt.Sprintf("dev-%05d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer wg.Done()
			defer func() { <-sem }()
			po := paho.NewClientOptions().
				AddBroker("tls://" + f.addr).
				SetClientID(id).
				SetCleanSession(true).
				SetAutoReconnect(false).
				SetTLSConfig(f.clientTLS([]tls.Certificate{deviceCert(b, f.ca, id)}))
			c := paho.NewClient(po)
			if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
				errs <- fmt.Errorf("connect %s: %v", id, tok.Error())
				return
			}
			b.Cleanup(func() { c.Disconnect(0) })
			if tok := c.Subscribe(protocol.DesiredTopic(id), protocol.QoS, onMsg); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
				errs <- fmt.Errorf("subscribe %s: %v", id, tok.Error())
			}
		}(ids[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	doc := make([]byte, 2048)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		received.Store(0)
		target.Store(int64(n))
		doc[0] = byte(i)
		for _, id := range ids {
			if err := f.b.Publish(ctx, protocol.DesiredTopic(id), doc, true); err != nil {
				b.Fatal(err)
			}
		}
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(n), "devices")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/fanout")
}

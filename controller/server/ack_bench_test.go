package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/controller/broker"
	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// BenchmarkEventsToStore measures events from devices into the controller's
// store through the embedded broker over mutual TLS: each device publishes
// batches of 10 events (with their outbox range) and waits until it may
// delete them. mode=puback is the old rule (the broker's PUBACK, after the
// ingest commit; no acknowledgements published); mode=ack is the
// end-to-end rule (the controller's Ack on the device's ack topic, after
// the commit). One iteration: every device sends one batch, concurrently.
// Reported: stored events/s and the p50/p99 latency of a batch.
//
//	go test ./controller/server -run '^$' -bench 'EventsToStore/devices=1$/' -benchtime 500x
//	go test ./controller/server -run '^$' -bench 'EventsToStore/devices=1000$/' -benchtime 5x
func BenchmarkEventsToStore(b *testing.B) {
	for _, n := range []int{1, 1000} {
		for _, mode := range []string{"puback", "ack"} {
			b.Run(fmt.Sprintf("devices=%d/mode=%s", n, mode), func(b *testing.B) {
				benchEvents(b, n, mode == "ack")
			})
		}
	}
}

func benchEvents(b *testing.B, n int, e2e bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	authority, err := pki.Init(dir, pki.InitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(ctx, filepath.Join(dir, DBFile))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	sum := sha256.Sum256([]byte("bench-token"))
	hash := hex.EncodeToString(sum[:])
	if _, err := db.CreateEnrollToken(ctx, store.EnrollToken{Hash: hash, MaxUses: n, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("dev-%05d", i)
		if _, _, err := db.Enroll(ctx, hash, store.NewDevice{ID: ids[i], At: now}); err != nil {
			b.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &Server{log: log, db: db, authority: authority, metrics: newMetrics(func() float64 { return 0 })}
	brk, err := broker.New(broker.Options{Addr: "127.0.0.1:0", TLS: authority.MQTTServerConfig(), Logger: log, Ingest: s.ingest})
	if err != nil {
		b.Fatal(err)
	}
	if err := brk.Start(); err != nil {
		b.Fatal(err)
	}
	defer brk.Close()
	s.transport = brk
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if e2e {
		s.acks = newAcker(s)
		wg.Go(func() { s.acks.run(ctx) })
	}

	// One key for all devices (each certificate still names its device).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	type device struct {
		id   string
		c    paho.Client
		acks chan protocol.SeqRange
	}
	devs := make([]*device, n)
	sem := make(chan struct{}, 50)
	var cwg sync.WaitGroup
	for i, id := range ids {
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
		certPEM, _, err := authority.SignDeviceCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), id, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			b.Fatal(err)
		}
		d := &device{id: id, acks: make(chan protocol.SeqRange, 16)}
		devs[i] = d
		d.c = paho.NewClient(paho.NewClientOptions().AddBroker("tls://" + brk.Addr().String()).SetClientID(id).
			SetTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: authority.CACertPool(), MinVersion: tls.VersionTLS12}).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(30 * time.Second))
		sem <- struct{}{}
		cwg.Go(func() {
			defer func() { <-sem }()
			if t := d.c.Connect(); !t.WaitTimeout(60*time.Second) || t.Error() != nil {
				b.Errorf("connect %s: %v", id, t.Error())
				return
			}
			t := d.c.Subscribe(protocol.AckTopic(id), 1, func(_ paho.Client, m paho.Message) {
				if a, err := protocol.DecodeAck(m.Payload(), id); err == nil && a.Events != nil {
					d.acks <- *a.Events
				}
			})
			if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
				b.Errorf("subscribe %s: %v", id, t.Error())
			}
		})
	}
	cwg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	defer func() {
		for _, d := range devs {
			d.c.Disconnect(0)
		}
	}()

	const perBatch = 10
	var mu sync.Mutex
	var lat []time.Duration
	seq := uint64(0)
	b.ResetTimer()
	for b.Loop() {
		seq++
		var iwg sync.WaitGroup
		for _, d := range devs {
			iwg.Go(func() {
				first := (seq-1)*perBatch + 1
				evs := make([]protocol.Event, perBatch)
				for j := range evs {
					evs[j] = protocol.Event{ID: fmt.Sprintf("%s-%d", d.id, first+uint64(j)), At: now, Kind: "bench", Severity: "info", Message: "benchmark event"}
				}
				raw, _ := json.Marshal(protocol.EventBatch{Schema: protocol.Schema, DeviceID: d.id, Events: evs, First: first, Last: first + perBatch - 1})
				start := time.Now()
				t := d.c.Publish(protocol.EventsTopic(d.id), 1, false, raw)
				if !t.WaitTimeout(60*time.Second) || t.Error() != nil {
					b.Errorf("publish %s: %v", d.id, t.Error())
					return
				}
				if e2e {
					select {
					case r := <-d.acks:
						if r.First != first {
							b.Errorf("%s: ack of %d, want %d", d.id, r.First, first)
						}
					case <-time.After(60 * time.Second):
						b.Errorf("%s: no acknowledgement", d.id)
						return
					}
				}
				took := time.Since(start)
				mu.Lock()
				lat = append(lat, took)
				mu.Unlock()
			})
		}
		iwg.Wait()
	}
	elapsed := b.Elapsed()
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(len(lat)*perBatch)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	// Produced = stored.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, DBFile)+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	var stored int
	if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&stored); err != nil || stored != len(lat)*perBatch {
		b.Fatalf("%d events stored (%v), %d acknowledged", stored, err, len(lat)*perBatch)
	}
}

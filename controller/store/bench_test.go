package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// BenchmarkRecordStatus stores batches of 1000 status reports of about 300
// bytes for a fleet of 10,000 devices. The figure to read is reports/s.
//
//	go test ./controller/store -run '^$' -bench RecordStatus -benchtime 20x
func BenchmarkRecordStatus(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const fleetSize, batch = 10000, 1000
	if _, err := db.write.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < ?)
		INSERT INTO devices (id, state, labels, enrolled_at) SELECT printf('dev-%05d', i), 'active', '{"site":"berlin"}', 1 FROM n`, fleetSize-1); err != nil {
		b.Fatal(err)
	}
	report := func(i int, seq uint64) StatusUpdate {
		id := fmt.Sprintf("dev-%05d", i)
		return StatusUpdate{DeviceID: id, At: time.Now(), Report: protocol.StatusReport{
			Schema: 1, DeviceID: id, Seq: seq, At: time.Now(), AppliedRevision: seq, PolicyExpiresAt: time.Now().Add(24 * time.Hour),
			AgentVersion: "1.4.2",
			Apps: []protocol.AppStatus{
				{Name: "opcua-gateway", Version: "3.2.1", State: protocol.AppRunning},
				{Name: "hmi", Version: "1.0.7", State: protocol.AppRunning},
			},
		}}
	}
	raw, _ := json.Marshal(report(0, 1).Report)
	b.Logf("report size %d bytes", len(raw))
	batches := make([][]StatusUpdate, fleetSize/batch)
	b.ResetTimer()
	seq := uint64(0)
	for b.Loop() {
		seq++
		k := int(seq) % len(batches)
		b.StopTimer()
		batches[k] = batches[k][:0]
		for i := range batch {
			batches[k] = append(batches[k], report(k*batch+i, seq))
		}
		b.StartTimer()
		if err := db.RecordStatus(ctx, batches[k]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "reports/s")
}

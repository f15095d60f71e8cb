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

// BenchmarkChangeSideloadCheck is one change through the executor on a
// 10,000-device fleet in 100 groups, without any sideload override and with
// one (which is when the no-silent-weakening check resolves the policy of
// the marked devices before and after): a device added to a group (one
// device marked), and the same with every device marked (DirtyAll, as a
// settings, role or user change marks).
//
//	go test ./controller/store -run '^$' -bench ChangeSideloadCheck -benchtime 20x
func BenchmarkChangeSideloadCheck(b *testing.B) {
	for _, tc := range []struct{ override, all bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		override := tc.override
		b.Run(fmt.Sprintf("override=%v,all=%v", tc.override, tc.all), func(b *testing.B) {
			ctx := context.Background()
			db, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			const fleetSize, groups = 10000, 100
			if _, err := db.write.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < ?)
				INSERT INTO devices (id, state, labels, enrolled_at) SELECT printf('dev-%05d', i), 'active', printf('{"line":"%d"}', i % ?), 1 FROM n`, fleetSize-1, groups); err != nil {
				b.Fatal(err)
			}
			for g := range groups {
				if _, err := db.CreateGroup(ctx, fmt.Sprintf("line-%d", g), fmt.Sprintf("line=%d", g)); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := db.CreateGroup(ctx, "target", ""); err != nil {
				b.Fatal(err)
			}
			if override {
				if _, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "line-0", Policy: SideloadDeny}); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("dev-%05d", i%fleetSize)
				i++
				if _, err := db.Change(ctx, AuditEntry{Actor: "admin", Action: "group.add-devices", Kind: AuditChange}, func(ctx context.Context, c *Change) error {
					c.DirtyDevices(id)
					if tc.all {
						c.DirtyAll()
					}
					_, err := db.AddGroupDevices(ctx, "target", []string{id})
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

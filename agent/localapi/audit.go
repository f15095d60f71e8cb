package localapi

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/protocol"
)

// auditor queues events in the outbox, at most perMinute a minute.
type auditor struct {
	sink      EventSink
	onEvent   func()
	log       *slog.Logger
	now       func() time.Time
	perMinute int

	mu         sync.Mutex
	window     time.Time // start of the current minute window
	count      int       // events queued in the window
	suppressed int       // events dropped since the last one queued
}

// record queues ev (ID and At filled in) unless the rate limit is reached.
func (a *auditor) record(ctx context.Context, ev protocol.Event) {
	now := a.now().UTC()
	a.mu.Lock()
	if now.Sub(a.window) >= time.Minute || now.Before(a.window) {
		a.window, a.count = now, 0
	}
	if a.count >= a.perMinute {
		a.suppressed++
		a.mu.Unlock()
		a.log.Warn("local API event not queued: rate limit reached", "kind", ev.Kind, "message", ev.Message)
		return
	}
	a.count++
	if a.suppressed > 0 {
		if ev.Details == nil {
			ev.Details = map[string]string{}
		}
		ev.Details["suppressed_before"] = strconv.Itoa(a.suppressed)
		a.suppressed = 0
	}
	a.mu.Unlock()

	ev.ID, ev.At = apply.RandomID(), now
	a.log.Log(ctx, levelOf(ev.Severity), ev.Message, "kind", ev.Kind, "details", ev.Details)
	if a.sink == nil {
		return
	}
	// The client hanging up must not lose the event.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := a.sink.Enqueue(ctx, ev); err != nil {
		a.log.Error("could not queue local API event", "kind", ev.Kind, "err", err)
		return
	}
	if a.onEvent != nil {
		a.onEvent()
	}
}

func levelOf(severity string) slog.Level {
	if severity == "info" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// details builds an event's details from the request's peer and pairs.
func details(ctx context.Context, kv ...string) map[string]string {
	d := make(map[string]string, len(kv)/2+3)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			d[kv[i]] = kv[i+1]
		}
	}
	if p := peerFrom(ctx); p.known {
		d["peer_uid"] = strconv.FormatUint(uint64(p.uid), 10)
		d["peer_gid"] = strconv.FormatUint(uint64(p.gid), 10)
		d["peer_pid"] = strconv.FormatInt(int64(p.pid), 10)
	}
	return d
}

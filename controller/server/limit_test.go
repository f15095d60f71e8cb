package server

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// One source cannot hold more than max connections; a closed connection
// frees its slot; the limit counts per address.
func TestPerSourceLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	ln := limitPerSource(inner, 2, func(string) { refused.Add(1) })
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	wait := func() net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("connection not accepted")
		}
		return nil
	}
	dial()
	dial()
	s1 := wait()
	wait()
	third := dial()
	// The third is closed by the listener: a read sees EOF.
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection from one source was served")
	}
	if refused.Load() != 1 {
		t.Fatalf("refused = %d, want 1", refused.Load())
	}
	s1.Close()
	s1.Close() // a second close must not free a second slot
	dial()
	wait()
	fourth := dial()
	fourth.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := fourth.Read(make([]byte, 1)); err == nil {
		t.Fatal("double close freed two slots")
	}
}

package localapi

import (
	"context"
	"net"
)

// peer is the process at the other end of a connection, as the kernel
// reports it (SO_PEERCRED): for the audit log, never for authorization.
type peer struct {
	known    bool
	pid      int32
	uid, gid uint32
}

type peerKey struct{}

// withPeer records the connection's peer credentials in its context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	if p, ok := peerCred(c); ok {
		return context.WithValue(ctx, peerKey{}, p)
	}
	return ctx
}

func peerFrom(ctx context.Context) peer {
	p, _ := ctx.Value(peerKey{}).(peer)
	return p
}

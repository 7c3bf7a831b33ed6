// Package peer caps what one network peer may hold of a shared limit (the
// broker's connections waiting to log in, the API's enrolments in
// flight), so that one host cannot take all of it and hold the others
// out. A peer is an IPv4 address or an IPv6 /64: a host can use all of
// its /64, so counting its addresses one by one would cap nothing.
package peer

import (
	"net/netip"
	"sync"
)

// Of is the peer of a "host:port" address (net.Addr's String, or
// http.Request's RemoteAddr): its IPv4 address (an IPv4-mapped IPv6 one
// included), or the /64 of its IPv6 one. An address that is not an IP
// one (a Unix socket's) gives the zero Prefix, one peer for them all.
func Of(hostport string) netip.Prefix {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Counter counts what each peer holds, and lets none hold more than Max.
// The zero Counter (Max 0) lets nothing be taken. It is safe for
// concurrent use.
type Counter struct {
	Max int

	mu   sync.Mutex
	held map[netip.Prefix]int
}

// Take counts one more for p, or reports false when p holds Max already.
func (c *Counter) Take(p netip.Prefix) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[p] >= c.Max {
		return false
	}
	if c.held == nil {
		c.held = map[netip.Prefix]int{}
	}
	c.held[p]++
	return true
}

// Give counts one less for p; a peer that holds nothing is forgotten.
func (c *Counter) Give(p netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[p]--; c.held[p] <= 0 {
		delete(c.held, p)
	}
}

// Peers is how many peers hold something now.
func (c *Counter) Peers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// Package lb is the small TCP load balancer every machine of a dk8s cluster
// reaches the apiservers through, as RKE1's nginx-proxy and k3s's
// client-side balancer do: it listens on loopback, forwards each connection
// to an apiserver that answers /readyz, and follows the cluster's control
// planes as they come and go. TLS passes through untouched: kubelet and the
// other clients check the apiserver's own certificate, which names
// 127.0.0.1.
package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Balancer forwards connections from Listen to the healthy one of its
// servers, each "HOST:PORT".
type Balancer struct {
	// Listen is where clients connect: 127.0.0.1:6444.
	Listen string
	// Check asks one server whether it serves; nil means an HTTPS GET of
	// /readyz (see ReadyzCheck).
	Check func(ctx context.Context, server string) error
	// Interval is how often every server is checked; 0 means 2s.
	Interval time.Duration
	// DialTimeout bounds a connection to a server; 0 means 3s.
	DialTimeout time.Duration

	mu      sync.Mutex
	servers []string
	healthy map[string]bool
	next    int
	// conns are the open connections to each server, closed when it fails
	// its check or leaves: a client then reconnects to another at once
	// rather than waiting on a dead host's TCP timeouts.
	conns map[string]map[net.Conn]struct{}
}

// SetServers replaces the servers; an empty list is ignored, for a balancer
// with nowhere to send is worse than one with a stale list.
func (b *Balancer) SetServers(servers []string) {
	if len(servers) == 0 {
		return
	}
	servers = slices.Clone(servers)
	slices.Sort(servers)
	servers = slices.Compact(servers)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.healthy == nil {
		b.healthy = map[string]bool{}
	}
	for _, s := range servers {
		if _, known := b.healthy[s]; !known {
			b.healthy[s] = true // until its first check says otherwise
		}
	}
	for s := range b.healthy {
		if !slices.Contains(servers, s) {
			delete(b.healthy, s)
			b.dropLocked(s)
		}
	}
	b.servers = servers
}

// dropLocked closes the open connections to server; b.mu is held.
func (b *Balancer) dropLocked(server string) {
	for c := range b.conns[server] {
		c.Close()
	}
	delete(b.conns, server)
}

// track records up as a connection to server, until the returned func.
func (b *Balancer) track(server string, up net.Conn) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		b.conns = map[string]map[net.Conn]struct{}{}
	}
	if b.conns[server] == nil {
		b.conns[server] = map[net.Conn]struct{}{}
	}
	b.conns[server][up] = struct{}{}
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.conns[server], up)
	}
}

// Servers lists the servers with whether each passed its last check.
func (b *Balancer) Servers() map[string]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]bool{}
	for _, s := range b.servers {
		out[s] = b.healthy[s]
	}
	return out
}

// candidates are the servers to try for a new connection: the healthy
// ones in turn from the next, then the others (a check can be stale).
func (b *Balancer) candidates() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.servers)
	var good, bad []string
	for i := range n {
		s := b.servers[(b.next+i)%n]
		if b.healthy[s] {
			good = append(good, s)
		} else {
			bad = append(bad, s)
		}
	}
	if n > 0 {
		b.next = (b.next + 1) % n
	}
	return append(good, bad...)
}

func (b *Balancer) mark(server string, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, known := b.healthy[server]; known {
		b.healthy[server] = ok
	}
	if !ok {
		b.dropLocked(server)
	}
}

// Run listens and forwards until ctx ends, checking every server every
// Interval meanwhile.
func (b *Balancer) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", b.Listen)
	if err != nil {
		return err
	}
	return b.Serve(ctx, ln)
}

// Serve is Run on a listener of the caller's.
func (b *Balancer) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go b.checkLoop(ctx)
	// An error to accept (out of descriptors, say) is waited out, as
	// net/http's server does: the node's connections stay up meanwhile.
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go b.forward(ctx, conn)
	}
}

func (b *Balancer) checkLoop(ctx context.Context) {
	interval := b.Interval
	if interval == 0 {
		interval = 2 * time.Second
	}
	check := b.Check
	if check == nil {
		check = ReadyzCheck(nil)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		b.mu.Lock()
		servers := slices.Clone(b.servers)
		b.mu.Unlock()
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, interval)
				defer cancel()
				b.mark(s, check(cctx, s) == nil)
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// forward pipes conn to the first server of the candidates that accepts.
func (b *Balancer) forward(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	timeout := b.DialTimeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	for _, s := range b.candidates() {
		up, err := d.DialContext(ctx, "tcp", s)
		if err != nil {
			b.mark(s, false)
			continue
		}
		done := b.track(s, up)
		pipe(conn, up)
		done()
		return
	}
}

// pipe copies both ways until either side ends, then closes both.
func pipe(a, b net.Conn) {
	defer b.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

// ReadyzCheck is the default check: an HTTPS GET of https://SERVER/readyz,
// which the apiserver answers anonymously, with the server's certificate
// checked against client's roots (nil: the TLS configuration of an
// http.Client that trusts the cluster CA is the caller's to give).
func ReadyzCheck(client *http.Client) func(ctx context.Context, server string) error {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context, server string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s/readyz: %s", server, resp.Status)
		}
		return nil
	}
}

// Follow keeps b's servers those the cluster lists as its apiservers (the
// default/kubernetes Endpoints, which each apiserver keeps itself in while
// it runs), asking every interval through get until ctx ends. A failed
// read keeps the servers as they are.
func Follow(ctx context.Context, b *Balancer, get func(ctx context.Context) ([]string, error), interval time.Duration) {
	for {
		if servers, err := get(ctx); err == nil {
			b.SetServers(servers)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

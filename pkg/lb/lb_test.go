package lb

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// server answers every connection with its name and a newline.
func server(t *testing.T, name string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name + "\n"))
			c.Close()
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }
}

type health struct {
	mu   sync.Mutex
	down map[string]bool
}

func (h *health) set(s string, down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down[s] = down
}

func (h *health) check(_ context.Context, s string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down[s] {
		return errors.New("down")
	}
	return nil
}

func start(t *testing.T, b *Balancer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go b.Serve(ctx, ln)
	return ln.Addr().String()
}

func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBalancerSpreadsOverHealthyServersAndFollowsChanges(t *testing.T) {
	a, stopA := server(t, "a")
	defer stopA()
	bAddr, stopB := server(t, "b")
	defer stopB()
	c, stopC := server(t, "c")
	defer stopC()
	h := &health{down: map[string]bool{}}
	b := &Balancer{Check: h.check, Interval: 10 * time.Millisecond}
	b.SetServers([]string{a, bAddr})
	addr := start(t, b)

	seen := map[string]int{}
	for range 6 {
		seen[ask(t, addr)]++
	}
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Errorf("six connections over two healthy servers: %v, want 3 each", seen)
	}

	// One fails its check: every connection goes to the other.
	h.set(a, true)
	waitFor(t, "a marked down", func() bool { return !b.Servers()[a] })
	for range 4 {
		if got := ask(t, addr); got != "b" {
			t.Fatalf("with a failing its check, a connection reached %q", got)
		}
	}

	// A server that passes its check but refuses connections is skipped
	// (and marked), not handed to the client as a reset.
	h.set(a, false)
	stopB()
	waitFor(t, "a marked up", func() bool { return b.Servers()[a] })
	for range 4 {
		if got := ask(t, addr); got != "a" {
			t.Fatalf("with b gone, a connection reached %q", got)
		}
	}

	// Membership follows the cluster: c joins, a leaves.
	b.SetServers([]string{bAddr, c})
	b.SetServers(nil) // ignored: never left with nowhere to go
	if s := b.Servers(); len(s) != 2 {
		t.Fatalf("servers = %v, want b and c", s)
	}
	for range 4 {
		if got := ask(t, addr); got != "c" {
			t.Fatalf("with a removed and b gone, a connection reached %q", got)
		}
	}
}

func TestReadyzCheck(t *testing.T) {
	ready := true
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	check := ReadyzCheck(srv.Client())
	host := strings.TrimPrefix(srv.URL, "https://")
	if err := check(context.Background(), host); err != nil {
		t.Errorf("a ready server: %v", err)
	}
	ready = false
	if err := check(context.Background(), host); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a server not ready: %v, want its 503", err)
	}
	if err := ReadyzCheck(nil)(context.Background(), host); err == nil {
		t.Error("a server whose certificate is not trusted must fail the check")
	}
}

func TestBalancerClosesConnectionsToAServerThatFailsItsCheck(t *testing.T) {
	// A server that answers and then holds the connection open.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("held\n"))
		}
	}()
	h := &health{down: map[string]bool{}}
	b := &Balancer{Check: h.check, Interval: 10 * time.Millisecond}
	b.SetServers([]string{ln.Addr().String()})
	addr := start(t, b)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if line, _ := r.ReadString('\n'); line != "held\n" {
		t.Fatalf("read %q through the balancer", line)
	}
	h.set(ln.Addr().String(), true)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection to a server failing its check should be closed, got %v", err)
	}
}

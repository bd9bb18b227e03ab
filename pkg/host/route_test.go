package host

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

func TestEnsureServiceRoute(t *testing.T) {
	_, svc, _ := net.ParseCIDR("10.96.0.0/12")
	r := &hosttest.Runner{}
	if err := ensureServiceRoute(context.Background(), r, svc, false); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Calls, "\n"); got != "ip link add dk8s-svc type bridge\nip link set dk8s-svc up\nip route replace 10.96.0.0/12 dev dk8s-svc" {
		t.Errorf("a new device is made, brought up and given the range:\n%s", got)
	}
	r = &hosttest.Runner{}
	if err := ensureServiceRoute(context.Background(), r, svc, true); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Calls, "\n"); got != "ip link set dk8s-svc up\nip route replace 10.96.0.0/12 dev dk8s-svc" {
		t.Errorf("a device that exists is kept:\n%s", got)
	}

	// The host this runs on may have the device, or not.
	r = &hosttest.Runner{}
	if err := EnsureServiceRoute(context.Background(), r, "10.96.0.1/12"); err != nil {
		t.Fatal(err)
	}
	if last := r.Calls[len(r.Calls)-1]; last != "ip route replace 10.96.0.0/12 dev dk8s-svc" {
		t.Errorf("the range is routed by its network address: %q", r.Calls)
	}
	if err := EnsureServiceRoute(context.Background(), r, "10.96.0.0"); err == nil || !strings.Contains(err.Error(), `service range "10.96.0.0"`) {
		t.Errorf("a range that is not one should be refused: %v", err)
	}

	failing := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		if strings.HasPrefix(cmd, "ip route") {
			return nil, errors.New("exit status 2: RTNETLINK answers: Operation not permitted")
		}
		return nil, nil
	}}
	err := ensureServiceRoute(context.Background(), failing, svc, true)
	if err == nil || err.Error() != "keeping the service range 10.96.0.0/12 on the host (ip route replace 10.96.0.0/12 dev dk8s-svc): exit status 2: RTNETLINK answers: Operation not permitted" {
		t.Errorf("a failing ip should be named with its words: %v", err)
	}
	noBridge := &hosttest.Runner{Answer: func(string, int) ([]byte, error) { return nil, errors.New("exit status 2: Unknown device type.") }}
	if err := ensureServiceRoute(context.Background(), noBridge, svc, false); err == nil || !strings.Contains(err.Error(), "making dk8s-svc for the service range") {
		t.Errorf("a device that cannot be made should say so: %v", err)
	}
	if len(noBridge.Calls) != 1 {
		t.Errorf("nothing more is tried once the device cannot be made: %q", noBridge.Calls)
	}
}

func TestServiceRangeConflicts(t *testing.T) {
	routes := "default via 192.0.2.1 dev eth0\n" +
		"10.96.0.0/12 dev dk8s-svc scope link linkdown\n" +
		"10.100.5.0/24 via 192.0.2.9 dev tun0\n" +
		"172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1\n" +
		"10.0.0.0/8 via 192.0.2.7 dev eth1\n" +
		"10.97.1.1 via 192.0.2.9 dev tun0\n" +
		"blackhole 10.98.0.0/16\n"
	r := &hosttest.Runner{Answer: func(string, int) ([]byte, error) { return []byte(routes), nil }}
	got, err := ServiceRangeConflicts(context.Background(), r, "10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"the route 10.100.5.0/24 via 192.0.2.9 dev tun0", "the route 10.0.0.0/8 via 192.0.2.7 dev eth1", "the route 10.97.1.1 via 192.0.2.9 dev tun0", "the route blackhole 10.98.0.0/16"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q (not the default route, docker0, nor the range's own route)", got, want)
	}
	if got, _ := ServiceRangeConflicts(context.Background(), r, "10.128.0.0/12"); len(got) != 1 {
		t.Errorf("10.128.0.0/12 overlaps only 10.0.0.0/8: %q", got)
	}
}

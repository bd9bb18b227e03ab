package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// ServiceLink is the device the service range is routed to on the host: a
// bridge with no ports, so a packet for a ClusterIP that kube-proxy has not
// programmed (at start, after a kube-proxy crash) is dropped on the host
// instead of following the default route out to whatever answers there.
// Programmed traffic is rewritten by kube-proxy's DNAT before it would
// reach the device, so Services work as before. (kube-proxy's IPVS mode
// keeps its own dummy device for the same reason; a bridge is used because
// many hosts' kernels, this project's test machines among them, lack the
// dummy module.)
const ServiceLink = "dk8s-svc"

// EnsureServiceRoute keeps the service range on the host: ServiceLink
// exists and is up, and the range is routed to it, with ip through r.
func EnsureServiceRoute(ctx context.Context, r Runner, cidr string) error {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("service range %q: %w", cidr, err)
	}
	if conflicts, err := ServiceRangeConflicts(ctx, r, cidr); err != nil {
		return err
	} else if len(conflicts) > 0 {
		return fmt.Errorf("the service range %s overlaps %s: choose another --service-cidr", n, strings.Join(conflicts, "; "))
	}
	return ensureServiceRoute(ctx, r, n, linkExists(ServiceLink))
}

// ServiceRangeConflicts lists the host's routes and addresses that overlap
// the service range: routing the range to ServiceLink would take their
// traffic (a VPN's, a corporate network's), so dk8s refuses instead. The
// default route and the range's own route on ServiceLink are not
// conflicts.
func ServiceRangeConflicts(ctx context.Context, r Runner, cidr string) ([]string, error) {
	_, svc, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("service range %q: %w", cidr, err)
	}
	out, err := r.Run(ctx, nil, "ip", "-4", "route", "show")
	if errors.Is(err, exec.ErrNotFound) {
		return nil, nil // FindTools says to install iproute2
	}
	if err != nil {
		return nil, fmt.Errorf("listing the host's routes: %w", err)
	}
	var conflicts []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" || strings.Contains(" "+line+" ", " dev "+ServiceLink+" ") {
			continue
		}
		dst := f[0]
		switch dst { // a route's type comes before its destination
		case "unicast", "blackhole", "unreachable", "prohibit", "throw", "local", "broadcast", "anycast", "multicast", "nat":
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		_, n, err := net.ParseCIDR(dst)
		if err != nil {
			continue // a route type dk8s does not read (unreachable, ...)
		}
		if n.Contains(svc.IP) || svc.Contains(n.IP) {
			conflicts = append(conflicts, "the route "+strings.TrimSpace(line))
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && svc.Contains(ipn.IP) {
			conflicts = append(conflicts, "the host's address "+ipn.String())
		}
	}
	return conflicts, nil
}

// ensureServiceRoute is EnsureServiceRoute once it knows whether the
// device is there.
func ensureServiceRoute(ctx context.Context, r Runner, n *net.IPNet, exists bool) error {
	if !exists {
		if _, err := r.Run(ctx, nil, "ip", "link", "add", ServiceLink, "type", "bridge"); err != nil {
			return fmt.Errorf("making %s for the service range: %w", ServiceLink, err)
		}
	}
	for _, args := range [][]string{{"link", "set", ServiceLink, "up"}, {"route", "replace", n.String(), "dev", ServiceLink}} {
		if _, err := r.Run(ctx, nil, "ip", args...); err != nil {
			return fmt.Errorf("keeping the service range %s on the host (ip %s): %w", n, strings.Join(args, " "), err)
		}
	}
	return nil
}

// removeServiceRoute undoes EnsureServiceRoute: the route goes with the
// device.
func removeServiceRoute(ctx context.Context, r Runner) error {
	if !linkExists(ServiceLink) {
		return nil
	}
	if _, err := r.Run(ctx, nil, "ip", "link", "delete", ServiceLink); err != nil {
		return fmt.Errorf("deleting %s: %w", ServiceLink, err)
	}
	return nil
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

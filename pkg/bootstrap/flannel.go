package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/host"
)

// cniConfigPath is the node's CNI network, in the directory the runtime
// watches (host.RuntimeConfig).
func cniConfigPath(dir string) string { return filepath.Join(dir, "cni", "10-dk8s.conflist") }

// ensureCNI waits until flanneld on this node holds its lease, then writes
// the node's CNI network from it; the runtime picks it up, and kubelet
// reports the node Ready. Until then no pod but those on the host's
// network can start, as with flannel's own plugin.
func ensureCNI(ctx context.Context, dir string, timeout time.Duration) (host.FlannelNetwork, error) {
	var n host.FlannelNetwork
	err := wait.Until(ctx, pollInterval, timeout, func(context.Context) (bool, string, error) {
		var err error
		n, err = host.ReadFlannelSubnet(host.FlannelSubnetFile)
		if errors.Is(err, os.ErrNotExist) {
			return false, "flanneld has not written " + host.FlannelSubnetFile + " yet", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		if _, _, err := net.ParseCIDR(n.Subnet); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		return n, fmt.Errorf("the pod network did not come up on this node: %w; see 'kubectl -n %s logs ds/%s' and 'kubectl -n %s get pods -o wide'", err, addonNS, addons.FlannelDaemonSet, addonNS)
	}
	_, err = atomicfile.WriteIfChanged(cniConfigPath(dir), []byte(host.CNIConfig(n)), 0o644)
	return n, err
}

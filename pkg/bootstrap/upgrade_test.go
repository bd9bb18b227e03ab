package bootstrap

import (
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/images"
)

func release(version, etcd string) *images.Release {
	return &images.Release{Kubernetes: version, Images: []images.Image{{Component: "etcd", Name: "registry.k8s.io/etcd:" + etcd}}}
}

func TestCheckUpgradeFollowsTheSkewPolicy(t *testing.T) {
	for _, tc := range []struct {
		from, fromEtcd string
		to             *images.Release
		refused        string // a part of the refusal; "" when allowed
	}{
		{"", "", release("v1.37.2", "3.7.0-0"), ""},                            // a new cluster
		{"v1.37.2", "3.7.0-0", release("v1.37.2", "3.7.0-0"), ""},              // a rerun
		{"v1.36.3", "3.7.0-0", release("v1.37.2", "3.7.0-0"), ""},              // one minor up
		{"v1.37.1", "3.7.0-0", release("v1.37.2", "3.7.0-0"), ""},              // a patch
		{"v1.37.2", "3.7.0-0", release("v1.37.1", "3.7.0-0"), ""},              // a patch back
		{"v1.35.4", "3.6.5-0", release("v1.37.2", "3.7.0-0"), "v1.36.x first"}, // two minors
		{"v1.37.2", "3.7.0-0", release("v1.36.3", "3.7.0-0"), "does not downgrade"},
		{"v1.36.3", "3.7.0-0", release("v1.37.2", "3.6.5-0"), "etcd cannot move to an older minor"},
		// A rerun of the recorded version after an upgrade that stopped
		// with the newer etcd already running.
		{"v1.36.3", "3.7.0-0", release("v1.36.3", "3.6.5-0"), "etcd cannot move to an older minor"},
	} {
		err := CheckUpgrade(tc.from, tc.fromEtcd, tc.to)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s -> %s: refused: %v", tc.from, tc.to.Kubernetes, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s -> %s: want a refusal saying %q, got %v", tc.from, tc.to.Kubernetes, tc.refused, err)
		}
	}
}

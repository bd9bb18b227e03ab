package bootstrap

import (
	"context"
	"fmt"
	"strings"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/images"
)

// runningVersion is the Kubernetes version the cluster kept in cfg.Dir runs:
// the one its marker recorded at its last successful start, else its
// apiserver container's image tag; "" for a new cluster.
func runningVersion(ctx context.Context, engine containers.Engine, cfg Config) string {
	if s, err := ReadSettings(cfg.Dir); err == nil && s.KubernetesVersion != "" {
		return s.KubernetesVersion
	}
	if c, err := own(ctx, engine, cfg, "kube-apiserver"); err == nil {
		return imageTag(c.Image)
	}
	return ""
}

func imageTag(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return ""
}

// CheckUpgrade says whether a cluster at version from may be started at
// rel's version, by Kubernetes' version skew policy: the control plane
// moves up one minor version at a time and never back to an older minor,
// and etcd, whose data format only moves forward, never to an older minor
// version. The node's kubelet is checked against the new version when it
// is found (no newer than the apiserver, at most three minors older).
func CheckUpgrade(from, fromEtcd string, rel *images.Release) error {
	// etcd first: a rerun of a version whose etcd is older than the one an
	// upgrade stopped halfway left running is refused too.
	if etcd, ok := rel.Image("etcd"); ok && fromEtcd != "" && etcdOlder(imageTag(etcd.Name), fromEtcd) {
		return fmt.Errorf("the cluster's etcd is %s and release %s has etcd %s: etcd cannot move to an older minor version with the same data; use a release whose etcd is %s or newer", fromEtcd, rel.Kubernetes, imageTag(etcd.Name), fromEtcd)
	}
	if from == "" || from == rel.Kubernetes {
		return nil
	}
	var fMinor, tMinor, patch int
	if _, err := fmt.Sscanf(from, "v1.%d.%d", &fMinor, &patch); err != nil {
		return nil // not a version dk8s wrote: nothing to compare
	}
	if _, err := fmt.Sscanf(rel.Kubernetes, "v1.%d.%d", &tMinor, &patch); err != nil {
		return fmt.Errorf("release %q is not a Kubernetes version", rel.Kubernetes)
	}
	switch {
	case tMinor < fMinor:
		return fmt.Errorf("the cluster runs Kubernetes %s; dk8s does not downgrade it to %s (its etcd data and API objects are newer than that version knows): start it with --kubernetes-version v1.%d.x", from, rel.Kubernetes, fMinor)
	case tMinor > fMinor+1:
		return fmt.Errorf("the cluster runs Kubernetes %s; Kubernetes upgrades one minor version at a time: start it with --kubernetes-version v1.%d.x first, then %s", from, fMinor+1, rel.Kubernetes)
	}
	return nil
}

// etcdOlder tells whether etcd tag a ("3.6.5-0") is of an older minor
// version than b.
func etcdOlder(a, b string) bool {
	var aMaj, aMin, bMaj, bMin int
	if _, err := fmt.Sscanf(a, "%d.%d", &aMaj, &aMin); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(b, "%d.%d", &bMaj, &bMin); err != nil {
		return false
	}
	return aMaj < bMaj || (aMaj == bMaj && aMin < bMin)
}

// checkUpgrade is CheckUpgrade for the cluster kept in cfg.Dir; it returns
// the version it runs.
func checkUpgrade(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release) (string, error) {
	from := runningVersion(ctx, engine, cfg)
	var fromEtcd string
	if c, err := own(ctx, engine, cfg, "etcd"); err == nil {
		fromEtcd = imageTag(c.Image)
	}
	return from, CheckUpgrade(from, fromEtcd, rel)
}

package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/pkg/pki"
)

// MarkerFile names the file that marks a directory as a dk8s cluster
// directory. dk8s writes it when it makes the directory, and deletes only
// directories that hold it: `reset --purge` never removes a directory dk8s
// did not make, whatever --dir says.
const MarkerFile = "dk8s-cluster.yaml"

// Settings are what a cluster was made with, kept in its directory (the
// marker file) so that later commands (a rerun of start, certs renew) issue
// certificates for the same names instead of what today's host name and
// route would suggest.
type Settings struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Name is the cluster's name, the label on its containers.
	Name string `yaml:"name"`
	// NodeName is fixed when the cluster is made: a node's identity does
	// not follow a later change of the host name.
	NodeName string `yaml:"nodeName"`
	// AdvertiseAddress is kept only when it was given (--advertise-address
	// or the config file); otherwise each start finds the default route's
	// address again, so a host whose address changed gets certificates for
	// its new one.
	AdvertiseAddress string `yaml:"advertiseAddress,omitempty"`
	ServiceCIDR      string `yaml:"serviceCIDR"`
	PodCIDR          string `yaml:"podCIDR"`
	// KubernetesVersion is the version of the last start that finished:
	// what an upgrade is checked against.
	KubernetesVersion string `yaml:"kubernetesVersion,omitempty"`
	// Role is what this host is in the cluster: RoleControlPlane (what
	// 'dk8s start' makes; "" in markers from before joins) or RoleWorker
	// (what 'dk8s join' makes).
	Role string `yaml:"role,omitempty"`
	// Server is the apiserver a worker joined.
	Server string `yaml:"server,omitempty"`
	// HA says the control plane listens for other control planes
	// (Config.HA); once set it stays, for members rely on it.
	HA bool `yaml:"ha,omitempty"`
	// EtcdInitialCluster and EtcdClusterState are a joined control plane's
	// first etcd start (Config.EtcdInitialCluster).
	EtcdInitialCluster string `yaml:"etcdInitialCluster,omitempty"`
	EtcdClusterState   string `yaml:"etcdClusterState,omitempty"`
	// ControlPlaneEndpoint is Config.ControlPlaneEndpoint, once given.
	ControlPlaneEndpoint string `yaml:"controlPlaneEndpoint,omitempty"`
	// EtcdSnapshotInterval and EtcdSnapshotRetention are the schedule of
	// etcd snapshots a control plane was last started with ("0s": none).
	EtcdSnapshotInterval  string `yaml:"etcdSnapshotInterval,omitempty"`
	EtcdSnapshotRetention int    `yaml:"etcdSnapshotRetention,omitempty"`
	// Profile is the node's profile (Config.Profile); "" is the default.
	Profile string `yaml:"profile,omitempty"`
}

// The roles a host has in its cluster.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
)

// IsWorker tells whether the marker is a joined worker's.
func (s *Settings) IsWorker() bool { return s != nil && s.Role == RoleWorker }

const settingsKind = "Cluster"

// AbsDir makes a --dir absolute and clean, and refuses the file system's
// root: a relative path would otherwise reach Docker as a named volume, and
// "//", "/." or "/" would name the whole host.
func AbsDir(dir string) (string, error) {
	if strings.TrimSpace(dir) == "" {
		return "", errors.New("--dir is empty: name the directory that holds the cluster (default /var/lib/dk8s)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--dir %q: %w", dir, err)
	}
	if abs == "/" {
		return "", fmt.Errorf("--dir %q is the root of the file system: name a directory of its own, such as /var/lib/dk8s", dir)
	}
	return abs, nil
}

// ReadSettings reads the marker of the cluster directory dir. It returns an
// error wrapping os.ErrNotExist when dir holds no marker.
func ReadSettings(dir string) (*Settings, error) {
	data, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if err != nil {
		return nil, err
	}
	var s Settings
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, MarkerFile), err)
	}
	if s.Kind != settingsKind || s.Name == "" {
		return nil, fmt.Errorf("%s is not a dk8s cluster marker", filepath.Join(dir, MarkerFile))
	}
	return &s, nil
}

func writeSettings(dir string, s Settings) error {
	s.APIVersion, s.Kind = "dk8s.io/v1alpha1", settingsKind
	data, err := yaml.Marshal(s)
	if err != nil {
		return err
	}
	head := "# Written by dk8s: this directory holds a dk8s cluster (etcd data, PKI,\n" +
		"# kubeconfigs). 'dk8s reset --purge' deletes only directories marked so.\n"
	_, err = atomicfile.WriteIfChanged(filepath.Join(dir, MarkerFile), append([]byte(head), data...), 0o600)
	return err
}

// claimDir makes sure dir is this cluster's directory before start writes
// anything in it: a new or empty directory is marked, a marked one must be
// this cluster's, and a directory dk8s made before markers existed (its
// CA says so) is marked now. Anything else (a directory of other files,
// such as /etc) is refused.
func claimDir(dir, cluster string) (*Settings, error) {
	s, err := ReadSettings(dir)
	switch {
	case err == nil:
		if s.IsWorker() {
			return nil, fmt.Errorf("%s holds a worker joined to %s, not a control plane: run 'dk8s reset' there first to make this host a control plane of its own, or choose another --dir", dir, s.Server)
		}
		if s.Name != cluster {
			return nil, fmt.Errorf("%s holds the cluster %q, not %q: pass --name %s, or another --dir", dir, s.Name, cluster, s.Name)
		}
		return s, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if empty, err := holdsNothingElse(dir); err != nil || empty || madeByDK8s(dir) {
		return nil, err
	}
	return nil, fmt.Errorf("%s is not empty and was not made by dk8s (no %s in it): choose a new or empty --dir, such as /var/lib/dk8s", dir, MarkerFile)
}

// holdsNothingElse tells whether dir holds nothing but what dk8s leaves
// before it marks a directory: start's lock (a start refused by its host
// checks leaves it), and the kubelet 'dk8s pull' fetched.
func holdsNothingElse(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Name() != ".lock" && (e.Name() != "bin" || !onlyOurBinaries(filepath.Join(dir, "bin"))) {
			return false, nil
		}
	}
	return true, nil
}

// onlyOurBinaries tells whether dir holds nothing but binaries dk8s puts
// there ('dk8s pull' fetches kubelet before any start).
func onlyOurBinaries(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		switch e.Name() {
		case "kubelet", "kubectl", "dk8s":
		default:
			return false
		}
	}
	return true
}

// madeByDK8s tells a cluster directory of a dk8s from before markers: its
// cluster CA is dk8s's.
func madeByDK8s(dir string) bool {
	c, err := (&pki.PKI{Dir: filepath.Join(dir, "pki")}).Cert("ca")
	return err == nil && c.Subject.CommonName == "dk8s-ca"
}

// settingsOf is what cfg records in the marker; explicit says whether the
// advertise address was given rather than found.
func settingsOf(cfg Config) Settings {
	s := Settings{Name: cfg.ClusterName, NodeName: cfg.NodeName, ServiceCIDR: cfg.ServiceCIDR, PodCIDR: cfg.PodCIDR, Role: RoleControlPlane,
		HA: cfg.HA, EtcdInitialCluster: cfg.EtcdInitialCluster, EtcdClusterState: cfg.EtcdClusterState, ControlPlaneEndpoint: cfg.ControlPlaneEndpoint}
	interval, keep := cfg.snapshotSchedule()
	s.EtcdSnapshotInterval, s.EtcdSnapshotRetention = interval.String(), keep
	if cfg.Profile != ProfileDefault {
		s.Profile = string(cfg.Profile)
	}
	if cfg.AdvertiseGiven && cfg.AdvertiseAddress != nil {
		s.AdvertiseAddress = cfg.AdvertiseAddress.String()
	}
	return s
}

// Resolve completes cfg for a cluster kept in cfg.Dir: what the user gave
// wins, then what the cluster was made with (its marker), then what the
// host suggests. The default route is looked up only when no address was
// given or kept, so a host without one works when --advertise-address is
// given.
func (c *Config) Resolve() error {
	if err := c.resolveKept(); err != nil {
		return err
	}
	if c.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("reading the host name: %w (pass --node-name)", err)
		}
		c.NodeName = strings.ToLower(host)
	}
	if c.AdvertiseAddress == nil {
		addr, err := DefaultAddress()
		if err != nil {
			return err
		}
		c.AdvertiseAddress = addr
	}
	return nil
}

// resolveKept fills what the cluster's marker kept, and the default
// ranges, looking nothing up on the host: enough for reset's clean-up.
func (c *Config) resolveKept() error {
	s, err := ReadSettings(c.Dir)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if s != nil {
		if c.NodeName == "" {
			c.NodeName = s.NodeName
		}
		if c.AdvertiseAddress == nil && s.AdvertiseAddress != "" {
			c.AdvertiseAddress, c.AdvertiseGiven = net.ParseIP(s.AdvertiseAddress), true
		}
		if c.ServiceCIDR == "" {
			c.ServiceCIDR = s.ServiceCIDR
		}
		if c.PodCIDR == "" {
			c.PodCIDR = s.PodCIDR
		}
		c.HA = c.HA || s.HA
		if c.ControlPlaneEndpoint == "" {
			c.ControlPlaneEndpoint = s.ControlPlaneEndpoint
		}
		if c.EtcdInitialCluster == "" {
			c.EtcdInitialCluster, c.EtcdClusterState = s.EtcdInitialCluster, s.EtcdClusterState
		}
		if d, perr := time.ParseDuration(s.EtcdSnapshotInterval); c.SnapshotInterval == nil && perr == nil {
			c.SnapshotInterval = &d
		}
		if c.SnapshotRetention == 0 {
			c.SnapshotRetention = s.EtcdSnapshotRetention
		}
		if c.Profile == "" {
			c.Profile = Profile(s.Profile)
		}
	}
	if c.Profile == "" {
		c.Profile = ProfileDefault
	}
	if _, perr := ParseProfile(string(c.Profile)); perr != nil && err == nil {
		err = perr
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.PodCIDR == "" {
		c.PodCIDR = DefaultPodCIDR
	}
	return err
}

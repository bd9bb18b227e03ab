package bootstrap

import (
	"fmt"
	"net"
	"os"

	"go.yaml.in/yaml/v3"
)

// startConfig is the file form of a cluster's settings (`dk8s start
// --config`).
type startConfig struct {
	NodeName         string                       `yaml:"nodeName"`
	AdvertiseAddress string                       `yaml:"advertiseAddress"`
	ServiceCIDR      string                       `yaml:"serviceCIDR"`
	PodCIDR          string                       `yaml:"podCIDR"`
	ExtraArgs        map[string]map[string]string `yaml:"extraArgs"`
}

// LoadStartConfig reads the YAML file at path (nodeName, advertiseAddress,
// serviceCIDR, podCIDR, extraArgs) into cfg: what the file sets replaces
// cfg's, and its extraArgs replace cfg's whole. A key the format does not
// know is refused with its line rather than ignored, since ignoring it would
// start a cluster without the flags the user asked for. Every error names
// path.
func LoadStartConfig(path string, cfg *Config) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	dec := yaml.NewDecoder(fh)
	dec.KnownFields(true)
	var sc startConfig
	if err := dec.Decode(&sc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if sc.NodeName != "" {
		cfg.NodeName = sc.NodeName
	}
	if sc.AdvertiseAddress != "" {
		if cfg.AdvertiseAddress = net.ParseIP(sc.AdvertiseAddress); cfg.AdvertiseAddress == nil {
			return fmt.Errorf("%s: advertiseAddress %q is not an IP address", path, sc.AdvertiseAddress)
		}
	}
	if sc.ServiceCIDR != "" {
		cfg.ServiceCIDR = sc.ServiceCIDR
	}
	if sc.PodCIDR != "" {
		cfg.PodCIDR = sc.PodCIDR
	}
	cfg.ExtraArgs = sc.ExtraArgs
	return nil
}

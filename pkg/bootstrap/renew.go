package bootstrap

import "time"

// RenewCerts renews every certificate of the cluster kept in cfg.Dir but
// the CAs, for another CertValidity, keeping their keys, and rewrites the
// kubeconfigs that embed them. The certificates name what the cluster was
// made with (the settings kept in its directory, see Config.Resolve), not
// today's host name and route. The components load them when they restart.
// It returns the names of the certificates renewed.
func RenewCerts(cfg Config) ([]string, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	pcfg, err := cfg.PKIConfig()
	if err != nil {
		return nil, err
	}
	p := &PKI{Dir: cfg.PKIDir()}
	renewed, err := p.Renew(pcfg, time.Now())
	if err != nil {
		return renewed, err
	}
	return renewed, WriteKubeconfigs(p, cfg.Dir, cfg.ClusterName, cfg.APIServerURL())
}

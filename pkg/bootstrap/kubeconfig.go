package bootstrap

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Kubeconfigs names the client identities dk8s writes beside its PKI, as
// NAME.conf, each carrying the certificate of the same name.
var Kubeconfigs = []string{"admin", "super-admin", "controller-manager", "scheduler", "kubelet"}

// kubeconfig is the part of client-go's Config file format dk8s writes.
type kubeconfig struct {
	APIVersion     string         `yaml:"apiVersion"`
	Kind           string         `yaml:"kind"`
	CurrentContext string         `yaml:"current-context"`
	Clusters       []namedCluster `yaml:"clusters"`
	Users          []namedUser    `yaml:"users"`
	Contexts       []namedContext `yaml:"contexts"`
}

type namedCluster struct {
	Name    string `yaml:"name"`
	Cluster struct {
		Server string `yaml:"server"`
		CAData string `yaml:"certificate-authority-data"`
	} `yaml:"cluster"`
}

type namedUser struct {
	Name string `yaml:"name"`
	User struct {
		CertData string `yaml:"client-certificate-data"`
		KeyData  string `yaml:"client-key-data"`
	} `yaml:"user"`
}

type namedContext struct {
	Name    string `yaml:"name"`
	Context struct {
		Cluster string `yaml:"cluster"`
		User    string `yaml:"user"`
	} `yaml:"context"`
}

// WriteKubeconfigs writes NAME.conf into dir for each of Kubeconfigs,
// pointing at server with the cluster CA and the identity's own client
// certificate and key embedded. They hold private keys, so they are 0600.
// A file is rewritten only when its content changes (after a renewal).
func WriteKubeconfigs(p *PKI, dir, cluster, server string) error {
	ca, err := os.ReadFile(p.Path("ca", ".crt"))
	if err != nil {
		return err
	}
	for _, name := range Kubeconfigs {
		crt, err := os.ReadFile(p.Path(name, ".crt"))
		if err != nil {
			return err
		}
		key, err := os.ReadFile(p.Path(name, ".key"))
		if err != nil {
			return err
		}
		id := name + "@" + cluster
		var c namedCluster
		c.Name, c.Cluster.Server, c.Cluster.CAData = cluster, server, b64(ca)
		var u namedUser
		u.Name, u.User.CertData, u.User.KeyData = id, b64(crt), b64(key)
		var x namedContext
		x.Name, x.Context.Cluster, x.Context.User = id, cluster, id
		data, err := yaml.Marshal(kubeconfig{
			APIVersion: "v1", Kind: "Config", CurrentContext: id,
			Clusters: []namedCluster{c}, Users: []namedUser{u}, Contexts: []namedContext{x},
		})
		if err != nil {
			return err
		}
		path := filepath.Join(dir, name+".conf")
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := writeFile(path, data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

package pki

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/dk8s/dk8s/internal/atomicfile"
)

// Kubeconfig is one client identity written beside the PKI as a
// kubeconfig file that embeds its certificate and key.
type Kubeconfig struct {
	// File is the kubeconfig's file name in the directory it is written to.
	File string
	// Cert is the Name of the client certificate in the PKI; it also names
	// the kubeconfig's user and context (CERT@CLUSTER).
	Cert string
	// CA is the Name of the CA in the PKI that the server's certificate
	// chains to, embedded as certificate-authority-data.
	CA string
}

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

// WriteKubeconfigs writes each of kcs into dir, pointing at server, named
// cluster, with its CA and its own client certificate and key embedded.
// They hold private keys, so they are 0600. A file is rewritten only when
// its content changes (after a renewal).
func WriteKubeconfigs(p *PKI, dir, cluster, server string, kcs []Kubeconfig) error {
	for _, kc := range kcs {
		data, err := p.kubeconfig(kc, cluster, server)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, kc.File)
		if _, err := atomicfile.WriteIfChanged(path, data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// kubeconfig renders kc's file.
func (p *PKI) kubeconfig(kc Kubeconfig, cluster, server string) ([]byte, error) {
	ca, err := os.ReadFile(p.Path(kc.CA, ".crt"))
	if err != nil {
		return nil, err
	}
	crt, err := os.ReadFile(p.Path(kc.Cert, ".crt"))
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(p.Path(kc.Cert, ".key"))
	if err != nil {
		return nil, err
	}
	id := kc.Cert + "@" + cluster
	var c namedCluster
	c.Name, c.Cluster.Server, c.Cluster.CAData = cluster, server, b64(ca)
	var u namedUser
	u.Name, u.User.CertData, u.User.KeyData = id, b64(crt), b64(key)
	var x namedContext
	x.Name, x.Context.Cluster, x.Context.User = id, cluster, id
	return yaml.Marshal(kubeconfig{
		APIVersion: "v1", Kind: "Config", CurrentContext: id,
		Clusters: []namedCluster{c}, Users: []namedUser{u}, Contexts: []namedContext{x},
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

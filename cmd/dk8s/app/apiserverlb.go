package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/pkg/lb"
)

func newAPIServerLB(g *globals) *cobra.Command {
	var listen, caFile, kubeconfig string
	var servers []string
	cmd := &cobra.Command{
		Use:    "apiserver-lb --listen HOST:PORT --server HOST:PORT... --ca FILE --kubeconfig FILE",
		Short:  "Forward the node's connections to the apiservers that are ready, following the control planes (run by dk8s start and join)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(servers) == 0 {
				return errors.New("give at least one --server")
			}
			pool, err := readCAPool(caFile)
			if err != nil {
				return err
			}
			check := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
			b := &lb.Balancer{Listen: listen, Check: lb.ReadyzCheck(check)}
			b.SetServers(servers)
			logf := func(format string, args ...any) {
				fmt.Fprintf(g.streams.Err, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
			}
			logf("forwarding %s to %v", listen, servers)
			go lb.Follow(cmd.Context(), b, apiServers(kubeconfig, listen, logf), 10*time.Second)
			return b.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:6444", "`HOST:PORT` to listen on")
	cmd.Flags().StringArrayVar(&servers, "server", nil, "an apiserver, `HOST:PORT`, to start from (repeatable)")
	cmd.Flags().StringVar(&caFile, "ca", "", "the cluster CA `FILE` the apiservers' certificates are checked against")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "the node's kubeconfig `FILE`, to read the apiservers' list with (through the balancer itself)")
	return cmd
}

// apiServers reads the cluster's apiservers from the kubernetes Service's
// EndpointSlices (each apiserver keeps its address there while it runs), with
// the node's kubeconfig (which kubelet may not have written yet) through
// the balancer.
func apiServers(kubeconfig, listen string, logf func(string, ...any)) func(ctx context.Context) ([]string, error) {
	var last string
	return func(ctx context.Context) ([]string, error) {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, err
		}
		rc.Host, rc.Timeout = "https://"+listen, 5*time.Second
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, err
		}
		slices, err := cs.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range slices.Items {
			for _, p := range s.Ports {
				if p.Port == nil {
					continue
				}
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && !*e.Conditions.Ready {
						continue
					}
					for _, a := range e.Addresses {
						out = append(out, net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
					}
				}
			}
		}
		if got := fmt.Sprint(out); got != last && len(out) > 0 {
			logf("apiservers: %v", out)
			last = got
		}
		return out, nil
	}
}

// readCAPool reads the CA certificates of file.
func readCAPool(file string) (*x509.CertPool, error) {
	caPEM, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", file)
	}
	return pool, nil
}

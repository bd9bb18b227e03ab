package app

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

func newCSRApprover(g *globals) *cobra.Command {
	var kubeconfig, certFile, keyFile, caFile, serviceCIDR string
	var forbid []string
	ac := bootstrap.ApproverConfig{}
	cmd := &cobra.Command{
		Use:    "csr-approver --kubeconfig FILE --tls-cert-file FILE --tls-key-file FILE --client-ca-file FILE",
		Short:  "Approve kubelets' serving-certificate requests for their own name and the address they came from (run by dk8s start)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			rc.Timeout = 15 * time.Second
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return fmt.Errorf("the audit receiver's certificate: %w", err)
			}
			pool, err := readCAPool(caFile)
			if err != nil {
				return err
			}
			ac.AuditTLS = bootstrap.AuditClientTLS(cert, pool)
			if serviceCIDR != "" {
				if _, ac.ServiceNet, err = net.ParseCIDR(serviceCIDR); err != nil {
					return fmt.Errorf("--service-cidr: %w", err)
				}
			}
			for _, f := range forbid {
				ip := net.ParseIP(f)
				if ip == nil {
					return fmt.Errorf("--forbid-address %q is not an IP address", f)
				}
				ac.Forbidden = append(ac.Forbidden, ip)
			}
			ac.Log = func(msg string) {
				fmt.Fprintf(g.streams.Err, "%s %s\n", time.Now().UTC().Format(time.RFC3339), msg)
			}
			return bootstrap.RunApprover(cmd.Context(), cs, ac)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kubeconfig, "kubeconfig", "", "the approver's kubeconfig `FILE`")
	fl.StringVar(&ac.HealthAddr, "health-address", "127.0.0.1:10270", "`HOST:PORT` of its /healthz")
	fl.StringVar(&ac.AuditAddr, "audit-address", "127.0.0.1:10272", "`HOST:PORT` where the apiserver's audit webhook posts")
	fl.StringVar(&certFile, "tls-cert-file", "", "the audit receiver's serving certificate `FILE`")
	fl.StringVar(&keyFile, "tls-key-file", "", "its key `FILE`")
	fl.StringVar(&caFile, "client-ca-file", "", "the CA `FILE` the apiserver's client certificate chains to")
	fl.StringVar(&serviceCIDR, "service-cidr", "", "the Service `RANGE`, which no node's certificate may name")
	fl.StringArrayVar(&forbid, "forbid-address", nil, "an `IP` no node's certificate may name (the control-plane endpoint)")
	return cmd
}

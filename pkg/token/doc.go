// Package token is how a worker joins a dk8s cluster, kubeadm-style: the
// control plane makes bootstrap tokens (Secrets in kube-system that the
// apiserver accepts as bearer tokens) and publishes kube-public/cluster-info,
// which the controller-manager's bootstrapsigner signs with every token;
// the joining host fetches cluster-info without trusting the server, checks
// the signature of its token and the CA's public-key pin, and only then
// trusts the CA.
//
// The wire formats are Kubernetes's (k8s.io/cluster-bootstrap), so a kubeadm
// token works with dk8s and a dk8s token with kubeadm; the detached JWS
// check is written here with crypto/hmac rather than pulling in a JOSE
// library for one HMAC.
package token

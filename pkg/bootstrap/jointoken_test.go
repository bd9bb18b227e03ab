package bootstrap

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dk8s/dk8s/pkg/pki"
	"github.com/dk8s/dk8s/pkg/token"
)

func TestCreateJoinTokenPublishesTheClusterAndMakesAToken(t *testing.T) {
	dir := t.TempDir()
	p, _, err := pki.Ensure(filepath.Join(dir, "pki"), []pki.CertSpec{{Name: "ca", CommonName: "dk8s-ca"}})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := p.Cert("ca")
	cfg := Config{ClusterName: "dk8s", Dir: dir, NodeName: "cp", AdvertiseAddress: net.ParseIP("192.0.2.10")}
	cs := fake.NewClientset()

	jt, err := CreateJoinToken(context.Background(), cs, cfg, time.Hour, "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if jt.Server != "https://192.0.2.10:6443" || jt.CAHash != token.CAHash(ca) || jt.Description != "worker-1" {
		t.Errorf("CreateJoinToken = %+v", jt)
	}
	if _, err := token.Parse(jt.String()); err != nil {
		t.Error(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["kubeconfig"], "server: https://192.0.2.10:6443") {
		t.Errorf("cluster-info was not published for the advertised address: %v", err)
	}
	toks, err := token.List(context.Background(), cs)
	if err != nil || len(toks) != 1 || toks[0].ID != jt.ID {
		t.Errorf("tokens in the cluster: %+v, %v", toks, err)
	}
}

func TestCreateJoinTokenNeedsTheClusterCA(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ClusterName: "dk8s", Dir: dir, NodeName: "cp", AdvertiseAddress: net.ParseIP("192.0.2.10")}
	_, err := CreateJoinToken(context.Background(), fake.NewClientset(), cfg, time.Hour, "")
	if err == nil || !strings.Contains(err.Error(), "reading the cluster CA") || !strings.Contains(err.Error(), "'dk8s start'") {
		t.Errorf("CreateJoinToken without a CA: %v", err)
	}
}

func TestAdminClientOffAControlPlane(t *testing.T) {
	dir := t.TempDir()
	_, err := AdminClient(Config{Dir: dir})
	if want := filepath.Join(dir, "admin.conf") + " does not exist: run this on a control plane, or make this host one with 'dk8s start'"; err == nil || err.Error() != want {
		t.Errorf("AdminClient without admin.conf: %v, want %q", err, want)
	}
}

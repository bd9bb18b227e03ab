package bootstrap

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestAbsDirRefusesRootAndEmpty(t *testing.T) {
	for _, dir := range []string{"/", "//", "/.", "/..", "/var/..", "", "  "} {
		if got, err := AbsDir(dir); err == nil {
			t.Errorf("AbsDir(%q) = %q, want an error", dir, got)
		}
	}
	wd, _ := os.Getwd()
	if got, err := AbsDir("cluster/../c2"); err != nil || got != filepath.Join(wd, "c2") {
		t.Errorf("a relative --dir should become absolute and clean: got %q, %v", got, err)
	}
	if got, _ := AbsDir("/var/lib//dk8s/"); got != "/var/lib/dk8s" {
		t.Errorf("got %q", got)
	}
}

func TestCheckPurgeOnlyMarkedDirectories(t *testing.T) {
	base := t.TempDir()
	stranger := filepath.Join(base, "stranger")
	os.MkdirAll(stranger, 0o700)
	os.WriteFile(filepath.Join(stranger, "notes.txt"), []byte("mine"), 0o600)

	cfg := Config{ClusterName: "dk8s", Dir: stranger}
	err := CheckPurge(cfg)
	if err == nil || !strings.Contains(err.Error(), "refusing to purge") || !strings.Contains(err.Error(), "rm -rf "+stranger) {
		t.Fatalf("an unmarked directory must be refused with what to do by hand, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(stranger, "notes.txt")); err != nil {
		t.Fatal("CheckPurge touched the directory")
	}
	// By the guard itself, not by the marker check behind it (/ has no
	// marker either): a marker put in / must not make it purgeable.
	for _, dir := range []string{"relative", "/", "/var/lib/../lib/dk8s"} {
		if err := CheckPurge(Config{ClusterName: "dk8s", Dir: dir}); err == nil || !strings.Contains(err.Error(), "must be an absolute, clean path other than /") {
			t.Errorf("%q should be refused as no cluster directory can be: %v", dir, err)
		}
	}

	marked := filepath.Join(base, "marked")
	os.MkdirAll(marked, 0o700)
	if err := writeSettings(marked, Settings{Name: "dk8s", NodeName: "n"}); err != nil {
		t.Fatal(err)
	}
	if err := CheckPurge(Config{ClusterName: "dk8s", Dir: marked}); err != nil {
		t.Errorf("a marked directory of this cluster may be purged: %v", err)
	}
	if err := CheckPurge(Config{ClusterName: "other", Dir: marked}); err == nil || !strings.Contains(err.Error(), `"dk8s"`) {
		t.Errorf("another cluster's directory must be refused, got %v", err)
	}
	if err := CheckPurge(Config{ClusterName: "dk8s", Dir: filepath.Join(base, "gone")}); err != nil {
		t.Errorf("a directory that does not exist has nothing to purge: %v", err)
	}
}

func TestClaimDir(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o755)
	os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0"), 0o644)
	if _, err := claimDir(etc, "dk8s"); err == nil || !strings.Contains(err.Error(), "not made by dk8s") {
		t.Errorf("a directory of other files must be refused, got %v", err)
	}

	empty := filepath.Join(base, "empty")
	os.MkdirAll(empty, 0o700)
	os.WriteFile(filepath.Join(empty, ".lock"), nil, 0o600)
	if _, err := claimDir(empty, "dk8s"); err != nil {
		t.Errorf("an empty directory (but for start's lock) is taken: %v", err)
	}

	old := filepath.Join(base, "old")
	pcfg := PKIConfig{NodeName: "n", ServiceIP: net.ParseIP("10.96.0.1"), Addresses: []net.IP{net.ParseIP("192.0.2.1")}}
	if _, _, err := EnsurePKI(filepath.Join(old, "pki"), pcfg); err != nil {
		t.Fatal(err)
	}
	if _, err := claimDir(old, "dk8s"); err != nil {
		t.Errorf("a directory an older dk8s made (its CA says so) is adopted: %v", err)
	}

	writeSettings(empty, Settings{Name: "a"})
	if _, err := claimDir(empty, "b"); err == nil || !strings.Contains(err.Error(), "--name a") {
		t.Errorf("another cluster's directory must be refused, got %v", err)
	}
}

// The cluster's settings are kept in its directory; a later command takes
// them over what today's host would suggest, and flags over both.
func TestResolveKeepsTheClustersSettings(t *testing.T) {
	dir := t.TempDir()
	writeSettings(dir, Settings{Name: "dk8s", NodeName: "given-name", AdvertiseAddress: "198.51.100.7", ServiceCIDR: "10.100.0.0/16", PodCIDR: "10.200.0.0/16"})
	cfg := Config{ClusterName: "dk8s", Dir: dir}
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "given-name" || !cfg.AdvertiseAddress.Equal(net.ParseIP("198.51.100.7")) || !cfg.AdvertiseGiven ||
		cfg.ServiceCIDR != "10.100.0.0/16" || cfg.PodCIDR != "10.200.0.0/16" {
		t.Errorf("resolved %+v", cfg)
	}
	flagged := Config{ClusterName: "dk8s", Dir: dir, AdvertiseAddress: net.ParseIP("203.0.113.9"), AdvertiseGiven: true}
	if err := flagged.Resolve(); err != nil || !flagged.AdvertiseAddress.Equal(net.ParseIP("203.0.113.9")) {
		t.Errorf("a flag wins over the marker: %v %v", flagged.AdvertiseAddress, err)
	}
	if s := settingsOf(flagged); s.AdvertiseAddress != "203.0.113.9" || s.NodeName != "given-name" {
		t.Errorf("recorded %+v", s)
	}
	found := Config{ClusterName: "dk8s", Dir: t.TempDir(), NodeName: "n", AdvertiseAddress: net.ParseIP("192.0.2.3")}
	if s := settingsOf(found); s.AdvertiseAddress != "" {
		t.Errorf("an address found on the route is not kept (the host may move): %+v", s)
	}
}

// A certificate whose names no longer match the cluster's is issued again,
// with the same key; one that names all of them is kept.
func TestEnsurePKIReissuesForNewNames(t *testing.T) {
	dir := t.TempDir()
	cfg := PKIConfig{NodeName: "n", ServiceIP: net.ParseIP("10.96.0.1"), Addresses: []net.IP{net.ParseIP("192.0.2.1")}}
	p, _, err := EnsurePKI(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(p.Path("apiserver", ".key"))
	_, made, err := EnsurePKI(dir, cfg)
	if err != nil || len(made) != 0 {
		t.Fatalf("a rerun with the same names made %v (%v)", made, err)
	}
	cfg.Addresses = []net.IP{net.ParseIP("192.0.2.99")}
	_, made, err = EnsurePKI(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"apiserver": true, "etcd/server": true, "etcd/peer": true}
	if len(made) != len(want) {
		t.Errorf("after the address changed, reissued %v, want %v", made, want)
	}
	for _, n := range made {
		if !want[n] {
			t.Errorf("reissued %s, whose names did not change", n)
		}
	}
	c, _ := p.Cert("apiserver")
	found := false
	for _, ip := range c.IPAddresses {
		found = found || ip.Equal(net.ParseIP("192.0.2.99"))
	}
	if !found {
		t.Errorf("the apiserver's certificate lacks the new address: %v", c.IPAddresses)
	}
	if k2, _ := os.ReadFile(p.Path("apiserver", ".key")); string(k2) != string(key) {
		t.Error("reissuing replaced the key")
	}
}

// A directory holding only what a refused start leaves (its lock) may be
// purged: nothing in it can be lost.
func TestCheckPurgeTakesWhatARefusedStartLeft(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".lock"), nil, 0o600)
	if err := CheckPurge(Config{ClusterName: "dk8s", Dir: dir}); err != nil {
		t.Errorf("got %v", err)
	}
	os.WriteFile(filepath.Join(dir, "other"), nil, 0o600)
	if err := CheckPurge(Config{ClusterName: "dk8s", Dir: dir}); err == nil {
		t.Error("a file dk8s did not write must keep the directory")
	}
}

// The host's other addresses come and go (a Docker network, a VPN): they
// are named when a certificate is issued, but never reissue it, which would
// restart etcd and the apiserver on a rerun.
func TestEnsurePKIKeepsCertificatesWhenOtherAddressesChange(t *testing.T) {
	dir := t.TempDir()
	cfg := PKIConfig{NodeName: "n", ServiceIP: net.ParseIP("10.96.0.1"), Addresses: []net.IP{net.ParseIP("192.0.2.1")}, OtherAddresses: []net.IP{net.ParseIP("172.17.0.1")}}
	p, _, err := EnsurePKI(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Cert("apiserver")
	if !slices.ContainsFunc(c.IPAddresses, net.ParseIP("172.17.0.1").Equal) {
		t.Errorf("the host's other addresses should be named when issuing: %v", c.IPAddresses)
	}
	cfg.OtherAddresses = []net.IP{net.ParseIP("172.18.0.1")}
	if _, made, err := EnsurePKI(dir, cfg); err != nil || len(made) != 0 {
		t.Errorf("a new Docker network's address reissued %v (%v)", made, err)
	}
}

package integration

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

// listener is one port the host listens on (TCP) or has open (UDP), as a
// user's audit with ss sees it.
type listener struct {
	proto, addr, port, process string // process is "" for a kernel socket (VXLAN's)
	tls                        bool
	anonymous                  string // what a request without credentials gets
}

func (l listener) key() string { return l.proto + " " + l.addr + ":" + l.port }

var ssLine = regexp.MustCompile(`^(tcp|udp)\s+\S+\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+(?:\s+users:\(\("([^"]+)")?`)

// listeners are every TCP port the host listens on and every UDP port it
// has open, whatever holds them: the audit compares them with those open
// before the cluster was made, so no process of the cluster (a pod on the
// host's network, a kernel socket) can be left out by a list of names.
func listeners(t *testing.T) []listener {
	t.Helper()
	out, err := exec.Command("ss", "-Hlntup").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var ls []listener
	for _, line := range strings.Split(string(out), "\n") {
		m := ssLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		addr, _, _ := strings.Cut(strings.Trim(m[2], "[]"), "%") // 127.0.0.53%lo
		ls = append(ls, listener{proto: m[1], addr: addr, port: m[3], process: m[4]})
	}
	if len(ls) == 0 {
		t.Fatalf("ss listed no socket, which cannot be: the audit would pass on nothing\n%s", out)
	}
	return ls
}

// probe tries TLS, then asks for / without credentials.
func probe(l *listener) {
	host := l.addr
	if host == "*" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	target := net.JoinHostPort(host, l.port)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", target, &tls.Config{InsecureSkipVerify: true})
	scheme := "http"
	if err == nil {
		conn.Close()
		l.tls, scheme = true, "https"
	}
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Proxy: nil}}
	resp, err := c.Get(scheme + "://" + target + "/")
	if err != nil {
		l.anonymous = "refused: " + firstWords(err.Error())
		return
	}
	resp.Body.Close()
	l.anonymous = fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// orKernel names a socket's holder; a kernel socket has none.
func orKernel(process string) string {
	if process == "" {
		return "the kernel"
	}
	return process
}

func firstWords(s string) string {
	if len(s) > 70 {
		return s[len(s)-70:]
	}
	return s
}

func TestSecurity(t *testing.T) {
	harness(t)
	c := newCluster(t)
	c.node, c.nodeArgs = true, []string{"--kubelet-binary", filepath.Join(filepath.Dir(testLock), "kubelet")}
	// What was open before the cluster: the rest is the cluster's.
	before := map[string]bool{}
	for _, l := range listeners(t) {
		before[l.key()] = true
	}
	c.start()

	// Each control-plane container sees only its own files: the cluster's
	// secrets where kubeadm puts them and nowhere else.
	secrets := map[string][]string{ // file -> the containers that may read it
		"pki/ca.key":               {"dk8s-controller-manager"},
		"pki/sa.key":               {"dk8s-apiserver", "dk8s-controller-manager"},
		"pki/etcd/ca.key":          nil,
		"pki/front-proxy-ca.key":   nil,
		"super-admin.conf":         nil,
		"admin.conf":               nil,
		"pki/etcd/server.key":      {"dk8s-etcd"},
		"controller-manager.conf":  {"dk8s-controller-manager"},
		"pki/etcd/snapshotter.key": {"dk8s-etcd-snapshotter"},
	}
	for _, name := range controlPlane {
		out, err := exec.Command("docker", "inspect", "-f", `{{range .Mounts}}{{.Source}}|{{.RW}} {{end}}`, name).Output()
		if err != nil {
			t.Fatalf("inspecting %s: %v", name, err)
		}
		for _, m := range strings.Fields(string(out)) {
			src, rw, _ := strings.Cut(m, "|")
			if src == c.dir || src == filepath.Join(c.dir, "pki") {
				t.Errorf("%s has the whole %s mounted", name, src)
			}
			writable := src == filepath.Join(c.dir, "etcd") || name == "dk8s-etcd-snapshotter" && src == filepath.Join(c.dir, "snapshots")
			if rw == "true" && !writable {
				t.Errorf("%s can write %s", name, src)
			}
			for file, allowed := range secrets {
				if src == filepath.Join(c.dir, file) && !slices.Contains(allowed, name) {
					t.Errorf("%s can read %s", name, file)
				}
			}
		}
	}

	var ls []listener
	for _, l := range listeners(t) {
		if !before[l.key()] {
			ls = append(ls, l)
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "%-5s %-22s %-7s %-16s %-5s %s\n", "PROTO", "ADDRESS", "PORT", "PROCESS", "TLS", "ANONYMOUS REQUEST")
	for i := range ls {
		if ls[i].proto == "tcp" {
			probe(&ls[i])
		}
		l := ls[i]
		fmt.Fprintf(&report, "%-5s %-22s %-7s %-16s %-5v %s\n", l.proto, l.addr, l.port, l.process, l.tls, l.anonymous)
	}
	t.Logf("every port the cluster opened:\n%s", report.String())

	public := map[string]bool{"6443": true, "10250": true} // the apiserver, and kubelet's API on the node address
	// Plain-HTTP health and metrics ports on loopback, as kubeadm leaves
	// them, flanneld's health, and the health of dk8s's csr-approver and
	// etcd-snapshotter.
	plainLocal := map[string]bool{"2381": true, "10248": true, "10249": true, "10256": true, "10261": true, "10270": true, "10271": true}
	seen := map[string]bool{}
	for _, l := range ls {
		loopback := l.addr == "127.0.0.1" || l.addr == "::1" || strings.HasPrefix(l.addr, "127.")
		if l.proto == "udp" {
			// flannel's VXLAN, a kernel socket: the one UDP port the node
			// opens to the other machines.
			if !loopback && l.port != "8472" {
				t.Errorf("%s has UDP %s:%s open, not loopback", orKernel(l.process), l.addr, l.port)
			}
			seen["udp/"+l.port] = true
			continue
		}
		seen[l.port] = true
		if !loopback && !public[l.port] {
			t.Errorf("%s listens on %s:%s, not loopback", l.process, l.addr, l.port)
		}
		// containerd's CRI streaming server (exec, attach, port-forward for
		// kubelet): loopback only, a one-time token in each URL.
		streaming := l.process == "containerd" && loopback
		if !l.tls && !(plainLocal[l.port] && loopback) && !streaming {
			t.Errorf("%s on %s:%s speaks no TLS", l.process, l.addr, l.port)
		}
		if strings.HasPrefix(l.anonymous, "HTTP 2") && !plainLocal[l.port] && !streaming {
			t.Errorf("%s on port %s answers an anonymous GET / with %s", l.process, l.port, l.anonymous)
		}
	}
	for _, port := range []string{"2379", "2380", "6443", "10250", "10257", "10259", "10261", "10270", "10271", "10272", "udp/8472"} {
		if !seen[port] {
			t.Errorf("nothing listens on %s: the audit missed a component", port)
		}
	}

	t.Run("the health endpoints answer anonymously, the API does not", func(t *testing.T) {
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		// Each code is exact: 401 and 403 tell different configurations
		// apart, and accepting either would pass a broken one.
		for _, c := range []struct {
			url  string
			want int
			why  string
		}{
			// The apiserver runs with anonymous-auth=true and RBAC, as
			// kubeadm leaves it: a request without credentials becomes
			// system:anonymous, whom system:public-info-viewer lets read
			// the health and version endpoints, and nothing else. So the
			// API answers 403; a 401 would mean anonymous auth went off
			// (health checks without credentials would break), a 200 that
			// authorization lets anyone in.
			{"https://127.0.0.1:6443/readyz", 200, "public-info-viewer lets system:anonymous read the health endpoints"},
			{"https://127.0.0.1:6443/livez", 200, "public-info-viewer lets system:anonymous read the health endpoints"},
			{"https://127.0.0.1:6443/api", 403, "RBAC grants system:anonymous no discovery (system:discovery is for system:authenticated)"},
			{"https://127.0.0.1:6443/api/v1/secrets", 403, "RBAC grants system:anonymous nothing on the API"},
			// The controller-manager and scheduler delegate to the
			// apiserver, which takes a request without credentials as
			// system:anonymous. The health paths are always allowed; for
			// /metrics they ask RBAC, which denies system:anonymous: 403. A
			// 200 would mean their metrics are open to anyone.
			{"https://127.0.0.1:10257/healthz", 200, "the health paths need no authorization"},
			{"https://127.0.0.1:10257/metrics", 403, "RBAC denies system:anonymous /metrics"},
			{"https://127.0.0.1:10259/healthz", 200, "the health paths need no authorization"},
			{"https://127.0.0.1:10259/metrics", 403, "RBAC denies system:anonymous /metrics"},
			// kubelet has authentication.anonymous.enabled=false
			// (kubeletConfig): a request without a client certificate or
			// token is rejected as unauthenticated, 401, before any
			// authorization. With anonymous access on, it would become
			// system:anonymous and the Webhook authorizer would answer 403
			// instead; with authorization AlwaysAllow, 200.
			{"https://" + advertise(t) + ":10250/pods", 401, "kubelet's anonymous authentication is off"},
		} {
			resp, err := cl.Get(c.url)
			if err != nil {
				t.Errorf("%s: %v", c.url, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("anonymous GET %s = %d, want %d: %s", c.url, resp.StatusCode, c.want, c.why)
			}
		}
	})

	t.Run("etcd refuses a client without a certificate", func(t *testing.T) {
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := cl.Get("https://127.0.0.1:2379/v3/kv/range")
		if err == nil {
			resp.Body.Close()
			t.Errorf("etcd answered a client without a certificate: HTTP %d", resp.StatusCode)
		}
	})

	t.Run("private keys and kubeconfigs are root's, 0600", func(t *testing.T) {
		assertKeysRootOnly(t, c.dir)
	})
}

func advertise(t *testing.T) string {
	t.Helper()
	ip, err := bootstrap.DefaultAddress()
	if err != nil {
		t.Fatal(err)
	}
	return ip.String()
}

// clusterSecrets are the files dk8s writes into a cluster directory that
// hold a private key: every key of the PKI, the service-account key, and
// every kubeconfig (each embeds its identity's key).
func clusterSecrets() []string {
	files := []string{filepath.Join("pki", "sa.key")}
	for _, spec := range bootstrap.Specs(bootstrap.PKIConfig{}) {
		files = append(files, filepath.Join("pki", filepath.FromSlash(spec.Name)+".key"))
	}
	for _, kc := range bootstrap.Kubeconfigs() {
		files = append(files, kc.File)
	}
	return files
}

// assertKeysRootOnly checks that every .key and .conf file under dir, out
// of the trees that pods and images own, is root's and 0600. The walk fails
// on errors, and must have checked each of clusterSecrets: a missing or
// empty directory does not pass.
func assertKeysRootOnly(t *testing.T, dir string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			// A running cluster makes and removes files as the walk goes
			// (etcd's WAL, kubelet's state): one gone between the listing
			// and its stat is no failure; clusterSecrets below still must
			// all be seen, and the directory itself must exist.
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		// Pods' files and images are theirs, not dk8s's.
		if info.IsDir() && (path == filepath.Join(dir, "containerd") || path == filepath.Join(dir, "kubelet", "pods")) {
			return filepath.SkipDir
		}
		if info.IsDir() || !(strings.HasSuffix(path, ".key") || strings.HasSuffix(path, ".conf")) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		seen[rel] = true
		if st := info.Sys().(*syscall.Stat_t); info.Mode().Perm() != 0o600 || st.Uid != 0 {
			t.Errorf("%s is %v owned by uid %d, want 0600 root", path, info.Mode().Perm(), st.Uid)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	for _, f := range clusterSecrets() {
		if !seen[f] {
			t.Errorf("%s was not checked: %s has no such file", f, dir)
		}
	}
}

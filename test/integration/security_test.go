package integration

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

// listener is one TCP port the host listens on, as a user's audit sees it.
type listener struct {
	addr, port, process string
	tls                 bool
	anonymous           string // what a request without credentials gets
}

var ssLine = regexp.MustCompile(`^LISTEN\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+\s+users:\(\("([^"]+)"`)

// clusterProcesses are the processes a dk8s cluster runs on the host.
var clusterProcesses = []string{"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "kube-proxy", "containerd"}

func listeners(t *testing.T) []listener {
	t.Helper()
	out, err := exec.Command("ss", "-Hltnp").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var ls []listener
	for _, line := range strings.Split(string(out), "\n") {
		m := ssLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, p := range clusterProcesses {
			if strings.HasPrefix(m[3], p) {
				ls = append(ls, listener{addr: strings.Trim(m[1], "[]"), port: m[2], process: m[3]})
			}
		}
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
	c.start()

	ls := listeners(t)
	var report strings.Builder
	fmt.Fprintf(&report, "%-22s %-7s %-16s %-5s %s\n", "ADDRESS", "PORT", "PROCESS", "TLS", "ANONYMOUS REQUEST")
	for i := range ls {
		probe(&ls[i])
		l := ls[i]
		fmt.Fprintf(&report, "%-22s %-7s %-16s %-5v %s\n", l.addr, l.port, l.process, l.tls, l.anonymous)
	}
	t.Logf("every port the cluster listens on:\n%s", report.String())

	public := map[string]bool{"6443": true, "10250": true} // the apiserver, and kubelet's API on the node address
	// Plain-HTTP health and metrics ports on loopback, as kubeadm leaves them.
	plainLocal := map[string]bool{"2381": true, "10248": true, "10249": true, "10256": true}
	seen := map[string]bool{}
	for _, l := range ls {
		seen[l.port] = true
		loopback := l.addr == "127.0.0.1" || l.addr == "::1" || strings.HasPrefix(l.addr, "127.")
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
	for _, port := range []string{"2379", "2380", "6443", "10250", "10257", "10259"} {
		if !seen[port] {
			t.Errorf("nothing listens on %s: the audit missed a component", port)
		}
	}

	t.Run("the health endpoints answer anonymously, the API does not", func(t *testing.T) {
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		for url, want := range map[string]int{
			"https://127.0.0.1:6443/readyz":           200,
			"https://127.0.0.1:6443/livez":            200,
			"https://127.0.0.1:6443/api/v1/secrets":   401,
			"https://127.0.0.1:10257/healthz":         200,
			"https://127.0.0.1:10257/metrics":         403,
			"https://127.0.0.1:10259/healthz":         200,
			"https://127.0.0.1:10259/metrics":         403,
			"https://" + advertise(t) + ":10250/pods": 401,
		} {
			resp, err := cl.Get(url)
			if err != nil {
				t.Errorf("%s: %v", url, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != want && !(want == 401 && resp.StatusCode == 403) {
				t.Errorf("anonymous GET %s = %d, want %d", url, resp.StatusCode, want)
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
		n := 0
		filepath.Walk(c.dir, func(path string, info os.FileInfo, err error) error {
			// Pods' files and images are theirs, not dk8s's.
			if err == nil && info.IsDir() && (path == filepath.Join(c.dir, "containerd") || path == filepath.Join(c.dir, "kubelet", "pods")) {
				return filepath.SkipDir
			}
			if err != nil || !(strings.HasSuffix(path, ".key") || strings.HasSuffix(path, ".conf")) {
				return nil
			}
			n++
			st := info.Sys().(*syscall.Stat_t)
			if info.Mode().Perm() != 0o600 || st.Uid != 0 {
				t.Errorf("%s is %v owned by uid %d, want 0600 root", path, info.Mode().Perm(), st.Uid)
			}
			return nil
		})
		if n < 20 {
			t.Errorf("found only %d keys and kubeconfigs", n)
		}
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

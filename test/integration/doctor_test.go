package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestDoctor is issue 12's "done when" for dk8s doctor: on a real node (a
// harness machine, whose own network namespace, mounts and Docker engine
// take the faults without harming this host), doctor passes the healthy
// node; then each failure it diagnoses is caused for real, doctor must name
// it (its check and its fix) and exit non-zero, and the failure is undone
// before the next.
func TestDoctor(t *testing.T) {
	_, rel := harness(t)
	pause, _ := rel.Image("pause")
	m := startMachine(t, "dk8s-it-doctor")
	m.must(t, "pull", "--mirror", machineFlatMirror)
	start := []string{"start", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror}
	m.must(t, start...)
	kubectl := adminKubectl(t, m)
	node := m.name
	sh := func(t *testing.T, script string) {
		t.Helper()
		if r := m.exec(t, "sh", "-ec", script); r.code != 0 {
			t.Fatalf("in %s: %s:\n%s", m.name, script, r)
		}
	}
	kube := func(t *testing.T, args ...string) {
		t.Helper()
		if out, err := kubectl(args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// healthy waits for doctor to pass the node: after an undo, the node
	// takes a moment to be whole again (a runtime restarted, a taint the
	// controller lifts).
	healthy := func(t *testing.T, within time.Duration) {
		t.Helper()
		var r result
		look := func() bool { r = m.dk8s(t, "doctor"); return r.code == 0 }
		if !look() && !waitFor(within, look) {
			t.Fatalf("doctor should pass the healthy node:\n%s", r)
		}
		if !strings.Contains(r.stdout, "healthy: ") || strings.Contains(r.stdout, "PROBLEM") {
			t.Fatalf("doctor on a healthy node should say so, with no problem:\n%s", r)
		}
	}
	// names runs doctor until it names the failure (some take a moment to
	// show: a pull that fails, a pod that crashes), and checks it fails.
	// again, when set, causes the failure again before each look.
	names := func(t *testing.T, within time.Duration, again func(*testing.T), check string, want ...string) {
		t.Helper()
		var r result
		found := func() bool {
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(line, "PROBLEM") && strings.Contains(line, " "+check+": ") {
					return true
				}
			}
			return false
		}
		look := func() bool {
			if again != nil {
				again(t)
			}
			r = m.dk8s(t, "doctor")
			return found()
		}
		_ = look() || waitFor(within, look)
		if !found() || r.code == 0 {
			t.Fatalf("doctor should exit non-zero naming the problem %q:\n%s", check, r)
		}
		t.Logf("doctor said:\n%s", r.stdout)
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("doctor's finding %q should say %q:\n%s", check, w, r.stdout)
			}
		}
	}

	t.Run("a healthy node passes", func(t *testing.T) {
		healthy(t, 2*time.Minute)
		r := m.dk8s(t, "doctor", "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"healthy": true`) || !strings.Contains(r.stdout, `"findings": []`) {
			t.Fatalf("doctor -o json on a healthy node:\n%s", r)
		}
	})

	const kubeletConf = "/var/lib/dk8s/kubelet/config.yaml"
	const runtimeConf = "/var/lib/dk8s/containerd/config.toml"
	for _, c := range []struct {
		name, check  string
		within       time.Duration // for the failure to show
		want         []string
		induce, undo func(t *testing.T)
		again        bool // kubelet undoes it within seconds: cause it again before each look
		undoneWithin time.Duration
	}{
		{
			name: "IP forwarding off", check: "ip_forward", want: []string{"sysctl -w net.ipv4.ip_forward=1"},
			induce: func(t *testing.T) { sh(t, "sysctl -w net.ipv4.ip_forward=0") },
			undo:   func(t *testing.T) { sh(t, "sysctl -w net.ipv4.ip_forward=1") },
		},
		{
			name: "bridge netfilter off", check: "br_netfilter", want: []string{"net.bridge.bridge-nf-call-iptables is 0", "sysctl -w net.bridge.bridge-nf-call-iptables=1"},
			induce: func(t *testing.T) { sh(t, "sysctl -w net.bridge.bridge-nf-call-iptables=0") },
			undo:   func(t *testing.T) { sh(t, "sysctl -w net.bridge.bridge-nf-call-iptables=1") },
		},
		{
			// Swap is global to the kernel: a fake /proc/swaps in the
			// machine's mounts, never swapon.
			name: "swap on", check: "swap", want: []string{"/swapfile", "swapoff -a"},
			induce: func(t *testing.T) {
				sh(t, `printf 'Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1048572\t0\t-2\n' >/tmp/swaps && mount --bind /tmp/swaps /proc/swaps`)
			},
			undo: func(t *testing.T) { sh(t, "umount /proc/swaps") },
		},
		{
			name: "pods' resolv.conf on systemd-resolved's stub", check: "dns", want: []string{"127.0.0.53", "resolvConf: /run/systemd/resolve/resolv.conf"},
			induce: func(t *testing.T) {
				sh(t, `cp `+kubeletConf+` /tmp/kubelet.yaml && printf 'nameserver 127.0.0.53\noptions edns0\n' >/tmp/stub-resolv.conf &&
					sed -i 's|^resolvConf: .*|resolvConf: /tmp/stub-resolv.conf|' `+kubeletConf)
			},
			undo: func(t *testing.T) { sh(t, "cp /tmp/kubelet.yaml "+kubeletConf) },
		},
		{
			// For real: kubelet restarted with the stub, CoreDNS's pods
			// started again with it, and their loop plugin stopping them.
			name: "CoreDNS on a forwarding loop", check: "coredns loop", within: 2 * time.Minute,
			want: []string{"plugin/loop: Loop (", "kubectl -n kube-system delete pod -l k8s-app=kube-dns", " dns: "},
			induce: func(t *testing.T) {
				sh(t, `cp `+kubeletConf+` /tmp/kubelet.yaml && printf 'nameserver 127.0.0.53\noptions edns0\n' >/tmp/stub-resolv.conf &&
					sed -i 's|^resolvConf: .*|resolvConf: /tmp/stub-resolv.conf|' `+kubeletConf+` && docker restart dk8s-kubelet`)
				waitKubelet(t, m)
				kube(t, "-n", "kube-system", "delete", "pod", "-l", "k8s-app=kube-dns", "--wait=false")
			},
			undo: func(t *testing.T) {
				sh(t, "cp /tmp/kubelet.yaml "+kubeletConf+" && docker restart dk8s-kubelet")
				waitKubelet(t, m)
				kube(t, "-n", "kube-system", "delete", "pod", "-l", "k8s-app=kube-dns", "--wait=false")
				kube(t, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=2m")
			},
			undoneWithin: 2 * time.Minute,
		},
		{
			name: "sandbox image not the release's", check: "sandbox image", want: []string{"registry.k8s.io/pause:3.6", "dk8s start"},
			induce: func(t *testing.T) {
				sh(t, `sed -i 's|sandbox_image = .*|sandbox_image = "registry.k8s.io/pause:3.6"|' `+runtimeConf)
			},
			// The fix doctor gives: start writes dk8s's configuration back
			// (the runtime never loaded the edited one).
			undo: func(t *testing.T) { m.must(t, start...) },
		},
		{
			// Removed from the runtime's store (the running pods keep their
			// sandboxes); start, the fix, imports it again.
			name: "sandbox image missing from the runtime", check: "sandbox image", want: []string{"does not hold its sandbox image " + pause.Name, "dk8s pull, then dk8s start"},
			induce: func(t *testing.T) {
				sh(t, "ctr --address /run/dk8s/containerd/containerd.sock -n k8s.io images rm "+pause.Name)
			},
			undo:         func(t *testing.T) { m.must(t, start...) },
			undoneWithin: time.Minute,
		},
		{
			name: "cgroup drivers differ", check: "cgroup driver", want: []string{"kubelet's cgroupDriver is cgroupfs", "SystemdCgroup = true"},
			induce: func(t *testing.T) {
				sh(t, `sed -i 's|SystemdCgroup = false|SystemdCgroup = true|' `+runtimeConf)
			},
			undo: func(t *testing.T) { m.must(t, start...) },
		},
		{
			// The runtime restarted with CRI off: the configuration says so,
			// and so does the running runtime.
			name: "CRI disabled", check: "cri", want: []string{`disabled_plugins has "io.containerd.grpc.v1.cri"`, "dk8s start (writes " + runtimeConf, "then docker restart dk8s-containerd"},
			induce: func(t *testing.T) {
				sh(t, `sed -i 's|^version = 2$|version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]|' `+runtimeConf+` && docker restart dk8s-containerd`)
			},
			// The fix doctor gives, as it gives it.
			undo: func(t *testing.T) {
				m.must(t, start...)
				sh(t, "docker restart dk8s-containerd")
			},
			undoneWithin: 3 * time.Minute,
		},
		{
			name: "runtime not answering", check: "cri", want: []string{"socket does not answer", "docker restart dk8s-containerd"},
			induce:       func(t *testing.T) { sh(t, "docker stop dk8s-containerd") },
			undo:         func(t *testing.T) { sh(t, "docker start dk8s-containerd") },
			undoneWithin: 3 * time.Minute,
		},
		{
			name: "the control-plane taint on the only node", check: "taints",
			want: []string{"node-role.kubernetes.io/control-plane:NoSchedule", "kubectl taint nodes " + node + " node-role.kubernetes.io/control-plane:NoSchedule-"},
			induce: func(t *testing.T) {
				kube(t, "taint", "nodes", node, "node-role.kubernetes.io/control-plane:NoSchedule")
			},
			undo: func(t *testing.T) {
				kube(t, "taint", "nodes", node, "node-role.kubernetes.io/control-plane:NoSchedule-")
			},
		},
		{
			name: "an expired certificate", check: "certificates", want: []string{"super-admin (expired", "dk8s certs renew"},
			induce: func(t *testing.T) { expireCert(t, m, "super-admin") },
			// The fix doctor gives.
			undo: func(t *testing.T) { m.must(t, "certs", "renew") },
		},
		{
			name: "a tag the mirror lacks", check: "image pulls", within: 2 * time.Minute,
			want: []string{"registry.k8s.io/pause:no-such-tag", "172.29.0.1:5002", "the mirrors lack registry.k8s.io/pause:no-such-tag"},
			induce: func(t *testing.T) {
				kube(t, "create", "deployment", "doctor-missing-tag", "--image=registry.k8s.io/pause:no-such-tag")
			},
			undo:         func(t *testing.T) { kube(t, "delete", "deployment", "doctor-missing-tag", "--wait") },
			undoneWithin: time.Minute,
		},
		{
			// This host's clock cannot be moved (it is the test host's
			// kernel's): a node's lease renewed ten minutes in this host's
			// future is what a node with a fast clock writes. kubelet renews
			// it within 10s, so it is written again before each look.
			name: "a node's clock ahead", check: "clock", again: true, within: 30 * time.Second, want: []string{"node " + node + "'s clock is", "ahead of this host's", "timedatectl set-ntp true"},
			induce: func(t *testing.T) {
				at := time.Now().Add(10 * time.Minute).UTC().Format("2006-01-02T15:04:05.000000Z07:00")
				kube(t, "-n", "kube-node-lease", "patch", "lease", node, "--type=merge", "-p", `{"spec":{"renewTime":"`+at+`"}}`)
			},
			undo: func(t *testing.T) {
				at := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00")
				kube(t, "-n", "kube-node-lease", "patch", "lease", node, "--type=merge", "-p", `{"spec":{"renewTime":"`+at+`"}}`)
			},
		},
		{
			// kubelet sets the condition back at its next status update
			// (within 10s), so it is set again before each look; the taint
			// the node controller adds meanwhile goes with the condition.
			name: "disk pressure", check: "disk", within: time.Minute, want: []string{"DiskPressure (induced by dk8s's doctor test)"},
			again:        true,
			induce:       func(t *testing.T) { diskPressure(t, kube, node, "True") },
			undo:         func(t *testing.T) { diskPressure(t, kube, node, "False") },
			undoneWithin: 2 * time.Minute,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var again func(*testing.T)
			if c.again {
				again = c.induce
			}
			c.induce(t)
			undone := false
			defer func() {
				if !undone {
					c.undo(t)
				}
			}()
			names(t, c.within, again, c.check, append(c.want, "fix: ")...)
			c.undo(t)
			undone = true
			if c.undoneWithin == 0 {
				c.undoneWithin = 30 * time.Second
			}
			healthy(t, c.undoneWithin)
		})
	}

	// The apiserver's clock ten minutes ahead, as a worker whose clock is
	// slow sees it: doctor is given a copy of the cluster's marker and a
	// kubeconfig that reaches the apiserver through the test's proxy,
	// which answers with a Date ten minutes on.
	t.Run("the apiserver's clock ahead", func(t *testing.T) {
		proxy := skewProxy(t, m, 10*time.Minute)
		sh(t, `mkdir -p /tmp/skew && cp /var/lib/dk8s/dk8s-cluster.yaml /tmp/skew/ && cat >/tmp/skew/admin.conf <<EOF
apiVersion: v1
kind: Config
clusters: [{name: proxy, cluster: {server: "http://`+proxy+`"}}]
users: [{name: admin, user: {}}]
contexts: [{name: proxy, context: {cluster: proxy, user: admin}}]
current-context: proxy
EOF`)
		defer sh(t, "rm -r /tmp/skew")
		r := m.dk8s(t, "doctor", "--dir", "/tmp/skew")
		line := lineWith(r.stdout, " clock: this host's clock is ")
		if r.code == 0 || !strings.HasPrefix(line, "PROBLEM") || !strings.Contains(line, "behind the apiserver's") || !strings.Contains(r.stdout, "timedatectl set-ntp true") {
			t.Fatalf("doctor should name the clock behind the apiserver's:\n%s", r)
		}
		if strings.Contains(r.stdout, " taints: ") || strings.Contains(r.stdout, "apiserver does not answer") {
			t.Errorf("through the proxy the cluster's other checks should pass:\n%s", r)
		}
		t.Logf("doctor said:\n%s", r.stdout)
	})

	// Free space, for real: doctor pointed at a copy of the cluster's
	// marker on a small file system that is nearly full (the machine's
	// own disks are the test host's, which must not be filled).
	t.Run("a cluster directory on a nearly full disk", func(t *testing.T) {
		sh(t, `mkdir -p /tmp/small && mount -t tmpfs -o size=64m tmpfs /tmp/small && cp /var/lib/dk8s/dk8s-cluster.yaml /tmp/small/ &&
			dd if=/dev/zero of=/tmp/small/fill bs=1M count=60 2>/dev/null`)
		defer sh(t, "umount /tmp/small")
		r := m.dk8s(t, "doctor", "--dir", "/tmp/small")
		line := lineWith(r.stdout, " disk: /tmp/small has ")
		if r.code == 0 || !strings.HasPrefix(line, "PROBLEM") || !strings.Contains(r.stdout, "docker system prune") {
			t.Fatalf("doctor should name the nearly full disk:\n%s", r)
		}
		t.Logf("doctor said:\n%s", r.stdout)
	})
}

// expireCert re-issues the certificate name of the machine's cluster with
// its own key and CA, as a year-old one would be: valid until an hour ago.
func expireCert(t *testing.T, m *machine, name string) {
	t.Helper()
	read := func(file string) *pem.Block {
		r := m.exec(t, "cat", "/var/lib/dk8s/pki/"+file)
		b, _ := pem.Decode([]byte(r.stdout))
		if r.code != 0 || b == nil {
			t.Fatalf("reading %s in %s: %s", file, m.name, r)
		}
		return b
	}
	cert, err := x509.ParseCertificate(read(name + ".crt").Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(read("ca.crt").Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParseECPrivateKey(read("ca.key").Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *cert
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-366*24*time.Hour), time.Now().Add(-time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca, cert.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker", "exec", "-i", m.name, "sh", "-c", "cat > /var/lib/dk8s/pki/"+name+".crt")
	cmd.Stdin = bytes.NewReader(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writing the expired %s: %v\n%s", name, err, out)
	}
}

// diskPressure sets node's DiskPressure condition to status, as kubelet
// would on a full disk.
func diskPressure(t *testing.T, kube func(*testing.T, ...string), node, status string) {
	t.Helper()
	kube(t, "patch", "node", node, "--subresource=status", "--type=strategic", "-p",
		`{"status":{"conditions":[{"type":"DiskPressure","status":"`+status+`","reason":"DoctorTest","message":"induced by dk8s's doctor test","lastHeartbeatTime":"`+time.Now().UTC().Format(time.RFC3339)+`","lastTransitionTime":"`+time.Now().UTC().Format(time.RFC3339)+`"}]}}`)
}

// waitKubelet waits for the machine's kubelet to answer its health check
// after a restart.
func waitKubelet(t *testing.T, m *machine) {
	t.Helper()
	var r result
	if !waitFor(time.Minute, func() bool {
		r = m.exec(t, "curl", "-fsS", "--max-time", "2", "http://127.0.0.1:10248/healthz")
		return r.code == 0
	}) {
		t.Fatalf("kubelet in %s did not answer after its restart: %s", m.name, r)
	}
}

// skewProxy serves the machine's apiserver, as its admin, on the machines'
// network's gateway (this host), with every answer's Date moved by skew.
// It returns the proxy's HOST:PORT as the machine reaches it.
func skewProxy(t *testing.T, m *machine, skew time.Duration) string {
	t.Helper()
	rc, err := clientcmd.RESTConfigFromKubeConfig([]byte(m.exec(t, "cat", "/var/lib/dk8s/admin.conf").stdout))
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(upstream)
	p.Transport = transport
	p.ModifyResponse = func(resp *http.Response) error {
		resp.Header.Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
		return nil
	}
	l, err := net.Listen("tcp", machineNetPre+"1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

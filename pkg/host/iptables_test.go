package host

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A POSTROUTING -s 10.244.0.10/32 -m comment --comment "name: \"dk8s\" id: \"3dfd\"" -j CNI-abbb`)
	want := []string{"-A", "POSTROUTING", "-s", "10.244.0.10/32", "-m", "comment", "--comment", `name: "dk8s" id: "3dfd"`, "-j", "CNI-abbb"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
	if got := splitRule(`-A X --comment ""  -j Y`); strings.Join(got, "|") != "-A|X|--comment||-j|Y" {
		t.Errorf("an empty quoted argument is an argument: %q", got)
	}
}

// iptablesSave is what `iptables -S` prints on a node with dk8s's network,
// kube-proxy, Docker and another CNI network (podman's) side by side.
var iptablesSave = map[string]string{
	"nat": `-P PREROUTING ACCEPT
-P POSTROUTING ACCEPT
-N CNI-0c5f
-N CNI-9a1e
-N DOCKER
-N FLANNEL-POSTRTG
-N KUBE-SEP-ABC
-N KUBE-SERVICES
-N KUBE-SVC-XYZ
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 10.244.0.10/32 -m comment --comment "name: \"dk8s\" id: \"3dfd\"" -j CNI-0c5f
-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"podman\" id: \"77aa\"" -j CNI-9a1e
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
-A CNI-0c5f -d 10.244.0.0/24 -m comment --comment "name: \"dk8s\" id: \"3dfd\"" -j ACCEPT
-A CNI-9a1e -d 10.88.0.0/16 -m comment --comment "name: \"podman\" id: \"77aa\"" -j ACCEPT
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -j KUBE-SVC-XYZ
-A KUBE-SVC-XYZ -j KUBE-SEP-ABC
-A KUBE-SEP-ABC -p tcp -j DNAT --to-destination 192.0.2.10:6443
`,
	"filter": `-P INPUT ACCEPT
-P FORWARD DROP
-N CNI-ADMIN
-N CNI-FORWARD
-N DOCKER
-N KUBE-FORWARD
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -o docker0 -j DOCKER
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.244.0.10/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.244.0.10/32 -j ACCEPT
-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
`,
}

func TestRemoveChains(t *testing.T) {
	r := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		if table, ok := strings.CutPrefix(cmd, "iptables -t "); ok && strings.HasSuffix(table, " -S") {
			if out, ok := iptablesSave[strings.TrimSuffix(table, " -S")]; ok {
				return []byte(out), nil
			}
			return nil, errors.New("exit status 3: can't initialize iptables table") // no mangle module
		}
		return nil, nil
	}}
	if err := removeChains(context.Background(), r, "10.244.0.0/16"); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"-t", "nat", "-S"},
		{"-t", "nat", "-D", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"},
		{"-t", "nat", "-D", "POSTROUTING", "-s", "10.244.0.10/32", "-m", "comment", "--comment", `name: "dk8s" id: "3dfd"`, "-j", "CNI-0c5f"},
		{"-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "flanneld masq", "-j", "FLANNEL-POSTRTG"},
		{"-t", "nat", "-F", "CNI-0c5f"}, {"-t", "nat", "-F", "FLANNEL-POSTRTG"}, {"-t", "nat", "-F", "KUBE-SEP-ABC"}, {"-t", "nat", "-F", "KUBE-SERVICES"}, {"-t", "nat", "-F", "KUBE-SVC-XYZ"},
		{"-t", "nat", "-X", "CNI-0c5f"}, {"-t", "nat", "-X", "FLANNEL-POSTRTG"}, {"-t", "nat", "-X", "KUBE-SEP-ABC"}, {"-t", "nat", "-X", "KUBE-SERVICES"}, {"-t", "nat", "-X", "KUBE-SVC-XYZ"},
		{"-t", "filter", "-S"},
		{"-t", "filter", "-D", "FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD"},
		{"-t", "filter", "-D", "CNI-FORWARD", "-d", "10.244.0.10/32", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-t", "filter", "-D", "CNI-FORWARD", "-s", "10.244.0.10/32", "-j", "ACCEPT"},
		{"-t", "filter", "-F", "KUBE-FORWARD"},
		{"-t", "filter", "-X", "KUBE-FORWARD"},
		{"-t", "mangle", "-S"},
	}
	var got []string
	for _, argv := range r.Argv {
		if argv[0] != "iptables" {
			t.Errorf("ran %q: only iptables", argv)
		}
		got = append(got, strings.Join(argv[1:], "|"))
	}
	var wantLines []string
	for _, w := range want {
		wantLines = append(wantLines, strings.Join(w, "|"))
	}
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("ran (arguments split by |):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}
}

func TestRemoveChainsWithoutIptables(t *testing.T) {
	r := &hosttest.Runner{Answer: func(string, int) ([]byte, error) {
		return nil, errors.New(`exec: "iptables": executable file not found in $PATH`)
	}}
	if err := removeChains(context.Background(), r, "10.244.0.0/16"); err != nil {
		t.Fatal(err)
	}
	if len(r.Calls) != 3 {
		t.Errorf("without iptables there is nothing to list or delete: %q", r.Calls)
	}
}

package host

import (
	"context"
	"errors"
	"slices"
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

// ip6tablesSave is what `ip6tables -S` prints on an IPv4 node: kubelet's
// and kube-proxy's chains, which they make in both families.
var ip6tablesSave = map[string]string{
	"filter": `-P INPUT ACCEPT
-N KUBE-FIREWALL
-N KUBE-KUBELET-CANARY
-A INPUT -j KUBE-FIREWALL
`,
}

func TestRemoveChains(t *testing.T) {
	r := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		tool, rest, _ := strings.Cut(cmd, " ")
		if table, ok := strings.CutPrefix(rest, "-t "); ok && strings.HasSuffix(table, " -S") {
			saved := map[string]map[string]string{"iptables": iptablesSave, "ip6tables": ip6tablesSave}[tool]
			if out, ok := saved[strings.TrimSuffix(table, " -S")]; ok {
				return []byte(out), nil
			}
			// No module for it: iptables' own words.
			return nil, errors.New("exit status 3: " + tool + " v1.8.9 (legacy): can't initialize " + tool + " table `" + strings.TrimSuffix(table, " -S") + "': Table does not exist (do you need to insmod?)")
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
		{"6", "-t", "nat", "-S"},
		{"6", "-t", "filter", "-S"},
		{"6", "-t", "filter", "-D", "INPUT", "-j", "KUBE-FIREWALL"},
		{"6", "-t", "filter", "-F", "KUBE-FIREWALL"}, {"6", "-t", "filter", "-F", "KUBE-KUBELET-CANARY"},
		{"6", "-t", "filter", "-X", "KUBE-FIREWALL"}, {"6", "-t", "filter", "-X", "KUBE-KUBELET-CANARY"},
		{"6", "-t", "mangle", "-S"},
	}
	var got []string
	for _, argv := range r.Argv {
		switch argv[0] {
		case "iptables":
			got = append(got, strings.Join(argv[1:], "|"))
		case "ip6tables":
			got = append(got, "6|"+strings.Join(argv[1:], "|"))
		default:
			t.Errorf("ran %q: only iptables and ip6tables", argv)
		}
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
	if len(r.Calls) != 2 {
		t.Errorf("without iptables there is nothing to list or delete, in either family: %q", r.Calls)
	}
}

// A table that cannot be read is not taken for a clean one: the reset
// says which, and goes on with the others.
func TestRemoveChainsSaysWhichTableItCouldNotRead(t *testing.T) {
	r := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		if cmd == "ip6tables -t filter -S" {
			return nil, errors.New("exit status 4: Another app is currently holding the xtables lock")
		}
		return nil, nil
	}}
	err := removeChains(context.Background(), r, "10.244.0.0/16")
	if err == nil || !strings.Contains(err.Error(), "reading the filter table with ip6tables") || !strings.Contains(err.Error(), "xtables lock") || !strings.Contains(err.Error(), "run the reset again") {
		t.Errorf("want an error naming ip6tables' filter table: %v", err)
	}
	if !slices.Contains(r.Calls, "ip6tables -t mangle -S") {
		t.Errorf("the tables after the unreadable one should still be cleaned: %q", r.Calls)
	}
}

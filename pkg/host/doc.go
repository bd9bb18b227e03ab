// Package host is the host's side of a dk8s node: the pod runtime (a
// containerd of dk8s's own, its configuration, the images it holds), the
// kubelet (found, or fetched with kubectl through binary mirrors and kept
// only when it matches its pinned sum; configured), the
// systemd units that supervise both where systemd is init, what host-exec
// prepares before an agent starts (the service range's route, the
// runtime's cgroup), and the clean-up that undoes it all.
//
// Every command it runs on the host (ctr, systemctl, iptables, ip, the
// agents' --version) goes through a Runner, with a context, so that its
// decisions are unit tested against a fake that records the commands and
// answers with canned output. It knows nothing of a cluster's
// configuration: what it needs (the cluster directory, the pod range, the
// mirrors, the pause image) it is given.
package host

package containers

import (
	"bufio"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/moby/client"
)

// capNames are the Linux capabilities by number, as Docker names them.
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// MissingCapabilities lists the capabilities this kernel has but the
// host's root lacks: the bounding set of PID 1 (init, where the Docker
// daemon's comes from), or this process's where PID 1 cannot be read. On a
// normal host it is empty; in some sandboxes (an LXC or Docker-hosted
// machine) root lacks a few, and then Docker cannot start a --privileged
// container at all ("unable to apply caps"), so dk8s asks for every
// capability but those instead. PID 1's, not this process's: the node
// agent runs in a container of Docker's default capabilities (with the
// host's PID namespace), and would otherwise ask for its joins' containers
// no more than it has itself.
func MissingCapabilities() []string {
	bounding, ok := boundingSet("/proc/1/status")
	if !ok {
		bounding, ok = boundingSet("/proc/self/status")
	}
	if !ok {
		return nil
	}
	return missingCapabilities(bounding, lastCapability())
}

// missingCapabilities names the capabilities numbered up to last that the
// bounding set lacks. Those past the kernel's last are not missing: no
// process has them, no daemon's "ALL" grants them, and counting them would
// take a full-featured host on a pre-5.8 kernel for a sandbox.
func missingCapabilities(bounding uint64, last int) []string {
	var missing []string
	for i, name := range capNames {
		if i <= last && bounding&(1<<uint(i)) == 0 {
			missing = append(missing, name)
		}
	}
	return missing
}

// boundingSet reads the capability bounding set in a /proc status file.
func boundingSet(status string) (uint64, bool) {
	f, err := os.Open(status)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapBnd:")
		if !ok {
			continue
		}
		bits, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		return bits, err == nil
	}
	return 0, false
}

// lastCapability is the kernel's highest capability number; every name dk8s
// knows when the kernel does not say.
func lastCapability() int {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return len(capNames) - 1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return len(capNames) - 1
	}
	return n
}

// containerCreator is the one call of the Docker client that creating a
// container makes, so that a test can play a daemon.
type containerCreator interface {
	ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error)
}

// createDroppingKnownCaps creates the container opts describe, keeping in
// CapDrop only the capabilities the daemon knows.
//
// A daemon refuses a CapDrop entry naming a capability it does not know, one
// name per answer: Docker 20.10 knows none after AUDIT_READ and says
// `invalid CapDrop: unknown capability: "CAP_BPF"`. Docker 29 knows them
// all, but refuses one its own environment lacks (`invalid CapDrop:
// capability not supported by your kernel or not available in the current
// environment: "CAP_BPF"`). Either way such a capability is never granted by
// that daemon's "ALL", so there is nothing to drop: the refused name is
// taken out and the daemon asked again. A capability the
// daemon knows but root lacks stays in CapDrop, as it must, or runc fails
// with "unable to apply caps". Asking the daemon, rather than a table of
// Docker versions, keeps this right for daemons newer and older than those
// dk8s has met. Each retry removes one entry, so there are at most as many
// retries as entries.
func createDroppingKnownCaps(ctx context.Context, c containerCreator, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	for {
		res, err := c.ContainerCreate(ctx, opts)
		name, ok := unknownCapability(err)
		if !ok || opts.HostConfig == nil {
			return res, err
		}
		rest, found := withoutCapability(opts.HostConfig.CapDrop, name)
		if !found {
			return res, err
		}
		host := *opts.HostConfig
		host.CapDrop = rest
		opts.HostConfig = &host
	}
}

var unknownCapabilityErr = regexp.MustCompile(`invalid CapDrop: (?:unknown capability|capability not supported by your kernel or not available in the current environment): "([^"]+)"`)

// unknownCapability returns the name of the CapDrop entry err says the
// daemon does not know, or knows its environment lacks.
func unknownCapability(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	m := unknownCapabilityErr.FindStringSubmatch(err.Error())
	if m == nil {
		return "", false
	}
	return m[1], true
}

// withoutCapability returns caps without name, comparing as Docker does:
// case aside and with or without the CAP_ prefix.
func withoutCapability(caps []string, name string) ([]string, bool) {
	norm := func(s string) string { return strings.TrimPrefix(strings.ToUpper(s), "CAP_") }
	var rest []string
	found := false
	for _, c := range caps {
		if norm(c) == norm(name) {
			found = true
			continue
		}
		rest = append(rest, c)
	}
	return rest, found
}

package containers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// capBit is the bounding-set bit of the capability Docker calls name.
func capBit(name string) uint64 { return 1 << uint(slices.Index(capNames, name)) }

// fullSet is every capability of a kernel whose last is CHECKPOINT_RESTORE
// (5.9 and later), as /proc/self/status shows it for root on a real host.
const fullSet = 1<<41 - 1

// fakeDaemon plays a Docker daemon that knows the capabilities up to
// lastKnown, as Docker 20.10 knows those up to AUDIT_READ, on a machine whose
// root has the bounding set bounding. An envAware daemon (Docker 29) also
// knows which of them its own bounding set lacks: it refuses those by name
// in CapAdd and CapDrop, and its "ALL" leaves them out.
type fakeDaemon struct {
	lastKnown string
	bounding  uint64
	envAware  bool
	calls     int
	created   *container.HostConfig
}

func (f *fakeDaemon) ContainerCreate(_ context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	f.calls++
	host := opts.HostConfig
	known := capNames[:slices.Index(capNames, f.lastKnown)+1]
	// Docker validates CapAdd, then CapDrop, naming the first unknown entry.
	for _, field := range []struct {
		name string
		caps []string
	}{{"CapAdd", host.CapAdd}, {"CapDrop", host.CapDrop}} {
		for _, c := range field.caps {
			c = strings.TrimPrefix(strings.ToUpper(c), "CAP_")
			if c != "ALL" && !slices.Contains(known, c) {
				return client.ContainerCreateResult{}, fmt.Errorf(`Error response from daemon: invalid %s: unknown capability: "CAP_%s"`, field.name, c)
			}
			if c != "ALL" && f.envAware && f.bounding&capBit(c) == 0 {
				return client.ContainerCreateResult{}, fmt.Errorf(`Error response from daemon: invalid %s: capability not supported by your kernel or not available in the current environment: "CAP_%s"`, field.name, c)
			}
		}
	}
	if f.envAware {
		known = slices.DeleteFunc(slices.Clone(known), func(c string) bool { return f.bounding&capBit(c) == 0 })
	}
	// What runc will be asked to grant: "ALL" is every capability the
	// daemon knows; one that root lacks makes the container fail.
	grant := known
	if !host.Privileged {
		grant = nil
		if slices.Contains(host.CapAdd, "ALL") {
			grant = known
		}
	}
	for _, c := range grant {
		if f.bounding&capBit(c) == 0 && !slices.Contains(host.CapDrop, c) {
			return client.ContainerCreateResult{}, fmt.Errorf("Error response from daemon: unable to apply caps: operation not permitted (would grant %s)", c)
		}
	}
	f.created = host
	return client.ContainerCreateResult{ID: "c0ffee"}, nil
}

// A machine hosted in Docker 20.10 or LXC: root lacks SYS_RESOURCE and the
// capabilities newer than AUDIT_READ, and its own Docker 20.10 does not know
// those newer ones.
func TestPrivilegedWithoutNewerCapsOnOldDocker(t *testing.T) {
	bounding := uint64(fullSet) &^ (capBit("SYS_RESOURCE") | capBit("PERFMON") | capBit("BPF") | capBit("CHECKPOINT_RESTORE"))
	d := &fakeDaemon{lastKnown: "AUDIT_READ", bounding: bounding}
	s := Spec{Name: "dk8s-kubelet", Image: "pause", Privileged: true}
	id, err := createContainer(context.Background(), d, s, missingCapabilities(bounding, 40))
	if err != nil {
		t.Fatalf("the container should be created: %v", err)
	}
	if id != "c0ffee" {
		t.Errorf("got ID %q", id)
	}
	if got := d.created.CapDrop; !slices.Equal(got, []string{"SYS_RESOURCE"}) {
		t.Errorf("CapDrop is %v, want only SYS_RESOURCE: root lacks it and the daemon knows it; the daemon does not know the newer ones", got)
	}
	if d.calls > 4 {
		t.Errorf("%d calls to create one container: one retry per refused name at most", d.calls)
	}
}

// A newer daemon that knows the newer capabilities must be told to drop
// those root lacks, or runc cannot apply them.
func TestPrivilegedWithoutNewerCapsOnNewDocker(t *testing.T) {
	bounding := uint64(fullSet) &^ (capBit("SYS_RESOURCE") | capBit("BPF"))
	d := &fakeDaemon{lastKnown: "CHECKPOINT_RESTORE", bounding: bounding}
	_, err := createContainer(context.Background(), d, Spec{Name: "x", Privileged: true}, missingCapabilities(bounding, 40))
	if err != nil {
		t.Fatalf("the container should be created: %v", err)
	}
	if got := d.created.CapDrop; !slices.Equal(got, []string{"SYS_RESOURCE", "BPF"}) {
		t.Errorf("CapDrop is %v, want SYS_RESOURCE and BPF", got)
	}
	if d.calls != 1 {
		t.Errorf("%d calls, want 1", d.calls)
	}
}

// Docker 29 in such a machine knows every capability, and which of them
// its environment lacks: it refuses to be told to drop those (seen: `invalid
// CapDrop: capability not supported by your kernel or not available in the
// current environment: "CAP_BPF"`), and its "ALL" grants none of them, so
// there is nothing to drop.
func TestPrivilegedOnDaemonThatKnowsItsEnvironment(t *testing.T) {
	bounding := uint64(fullSet) &^ (capBit("SYS_RESOURCE") | capBit("PERFMON") | capBit("BPF") | capBit("CHECKPOINT_RESTORE"))
	d := &fakeDaemon{lastKnown: "CHECKPOINT_RESTORE", bounding: bounding, envAware: true}
	if _, err := createContainer(context.Background(), d, Spec{Name: "x", Privileged: true}, missingCapabilities(bounding, 40)); err != nil {
		t.Fatalf("the container should be created: %v", err)
	}
	if got := d.created.CapDrop; len(got) != 0 {
		t.Errorf("CapDrop is %v, want none: the daemon grants none of them", got)
	}
	if d.calls > 5 {
		t.Errorf("%d calls to create one container: one retry per refused name at most", d.calls)
	}
}

// Where root has every capability, the container is simply privileged.
func TestPrivilegedWithEveryCap(t *testing.T) {
	for _, c := range []struct {
		name     string
		bounding uint64
		last     int
	}{
		{"kernel 5.9+", fullSet, 40},
		// Before 5.8 the kernel has no PERFMON: not having it is not lacking it.
		{"kernel 5.4", 1<<38 - 1, 37},
	} {
		missing := missingCapabilities(c.bounding, c.last)
		if len(missing) > 0 {
			t.Errorf("%s: missing %v", c.name, missing)
		}
		d := &fakeDaemon{lastKnown: "AUDIT_READ", bounding: c.bounding}
		if _, err := createContainer(context.Background(), d, Spec{Name: "x", Privileged: true}, missing); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if h := d.created; !h.Privileged || len(h.CapAdd) > 0 || len(h.CapDrop) > 0 {
			t.Errorf("%s: want Privileged alone, got privileged %v, add %v, drop %v", c.name, h.Privileged, h.CapAdd, h.CapDrop)
		}
	}
}

// Any other refusal is the caller's to see, unchanged and without retries.
func TestCreateKeepsOtherErrors(t *testing.T) {
	d := &fakeDaemon{lastKnown: "AUDIT_READ", bounding: fullSet}
	// A CapAdd name the daemon refuses is not dk8s's to take back.
	opts := client.ContainerCreateOptions{HostConfig: &container.HostConfig{CapAdd: []string{"BPF"}, CapDrop: []string{"BPF"}}}
	_, err := createDroppingKnownCaps(context.Background(), d, opts)
	if err == nil || !strings.Contains(err.Error(), "invalid CapAdd") {
		t.Errorf("got %v, want the daemon's refusal of CapAdd", err)
	}
	if d.calls != 1 {
		t.Errorf("%d calls, want 1", d.calls)
	}
}

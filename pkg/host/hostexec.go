package host

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// MountedRoot is where the host's root file system is bound inside the
// containers that supervise host agents (the runtime and kubelet).
const MountedRoot = "/host"

// ExecOptions say what to prepare on the host before an agent starts.
type ExecOptions struct {
	// Root is the host's root file system; "/" when already there (a
	// systemd unit).
	Root string
	// ServiceCIDR, when set, is routed to ServiceLink first.
	ServiceCIDR string
	// Cgroup, when set, is the cgroup the agent moves into first.
	Cgroup string
}

// ExecOnHost is what runs inside such a container (`dk8s host-exec`): it
// enters the host's root (bound at opts.Root), prepares what opts asks for
// there, running commands through r, and replaces itself with argv, so the
// agent sees the host's files, binaries and mounts as if started by an init
// system, while Docker supervises it.
func ExecOnHost(ctx context.Context, r Runner, opts ExecOptions, argv []string) error {
	if len(argv) == 0 {
		return errors.New("nothing to run")
	}
	if opts.Root != "" && opts.Root != "/" {
		if err := syscall.Chroot(opts.Root); err != nil {
			return fmt.Errorf("entering the host's root %s: %w", opts.Root, err)
		}
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if opts.ServiceCIDR != "" {
		if err := EnsureServiceRoute(ctx, r, opts.ServiceCIDR); err != nil {
			return err
		}
	}
	if opts.Cgroup != "" {
		if err := MoveToCgroup(opts.Cgroup); err != nil {
			return err
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// CheckStatic tells whether the binary at path runs without a dynamic
// loader: the supervising containers start it from an image that has none.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is linked dynamically; the node's supervising containers need a static dk8s: build it with 'make build' (CGO_ENABLED=0)", path)
		}
	}
	return nil
}

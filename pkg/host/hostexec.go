package host

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecOptions say what to prepare on the host before an agent starts.
type ExecOptions struct {
	// EnterHost says to enter the host's mount namespace first: set in
	// the containers that supervise the node's agents, unset under
	// systemd, whose units already run there.
	EnterHost bool
	// ServiceCIDR, when set, is routed to ServiceLink first.
	ServiceCIDR string
	// Cgroup, when set, is the cgroup the agent moves into first.
	Cgroup string
	// PathFirst, when set, goes first on the agent's PATH: the runtime's
	// own directory, so that containerd runs the shim and runc installed
	// beside it (as Docker's static binaries or containerd.io install
	// them), not another install's found earlier on the PATH. containerd
	// looks for its shim on the PATH before its own directory, and the
	// shim for runc on the PATH alone; a shim of another containerd
	// release fails every pod ("start failed: io.containerd.runc.v2: type
	// with url ...: not found").
	PathFirst string
}

// ExecOnHost is what runs inside such a container (`dk8s host-exec`): it
// enters the host's mount namespace (see hostMountNamespace), prepares
// what opts asks for there, running commands through r, and replaces
// itself with argv. The agent then runs with the host's root, files and
// mounts as if started by an init system, while Docker supervises it.
//
// A chroot into a bind of the host's root is not enough for a runtime:
// the mount namespace's root stays the container's, and every process
// that enters a pod's mount namespace later (runc exec: kubectl exec, exec
// probes and hooks, ephemeral containers) lands in that root, not the
// pod's.
func ExecOnHost(ctx context.Context, r Runner, opts ExecOptions, argv []string) error {
	if len(argv) == 0 {
		return errors.New("nothing to run")
	}
	if opts.EnterHost {
		if err := enterHostMounts(); err != nil {
			return err
		}
		// As systemd makes it at boot, so that kubelet's mounts for pods
		// propagate; a reboot of a host without systemd undoes what
		// dk8s start did.
		if err := EnsureSharedRoot(); err != nil {
			return err
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
	if opts.PathFirst != "" {
		if err := os.Setenv("PATH", opts.PathFirst+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
			return err
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// hostMountNamespace is the host's mount namespace, seen from a container
// in the host's PID namespace: its parent's, the shim of the Docker
// daemon's containerd, in the daemon's namespace, whose root Docker binds
// into containers. Not PID 1's: where the init is more privileged than
// root's bounding set (a container host, a micro-VM's agent), its
// namespaces cannot be read.
func hostMountNamespace() string { return fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()) }

// enteredEnv marks a host-exec that has entered hostMountNamespace and
// executed itself again there.
const enteredEnv = "DK8S_HOST_EXEC_ENTERED"

// enterHostMounts returns once this process runs in the host's mount
// namespace. Go's threads share their file-system attributes, so the
// kernel refuses setns(CLONE_NEWNS) to a Go process: one thread unshares
// them, enters the namespace alone, and executes this program again, whose
// every thread then starts there.
func enterHostMounts() error {
	ours, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("reading this process's mount namespace: %w", err)
	}
	hostNS := hostMountNamespace()
	hosts, err := os.Readlink(hostNS)
	if err != nil {
		return fmt.Errorf("reading the host's mount namespace (the container needs the host's PID namespace): %w", err)
	}
	if ours == hosts {
		return os.Unsetenv(enteredEnv)
	}
	if os.Getenv(enteredEnv) != "" {
		return fmt.Errorf("entered the host's mount namespace %s but run in %s", hosts, ours)
	}
	ns, err := os.Open(hostNS)
	if err != nil {
		return fmt.Errorf("opening the host's mount namespace: %w", err)
	}
	defer ns.Close()
	// Never unlocked: this thread either executes the program again or
	// carries a namespace the others do not have, and so ends with the
	// goroutine.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unsharing the file-system attributes: %w", err)
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("entering the host's mount namespace: %w", err)
	}
	err = syscall.Exec("/proc/self/exe", os.Args, append(os.Environ(), enteredEnv+"=1"))
	return fmt.Errorf("running dk8s again in the host's mount namespace: %w", err)
}

// CheckStatic tells whether the binary at path runs without a dynamic
// loader: the supervising containers start it from an image that has none.
func CheckStatic(path string) error {
	loader, err := elfLoader(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if loader != "" {
		return fmt.Errorf("%s is linked dynamically; the node's supervising containers need a static dk8s: build it with 'make build' (CGO_ENABLED=0)", path)
	}
	return nil
}

// elfLoader is the dynamic loader (ELF interpreter) the binary at path
// names, "" for a static one.
func elfLoader(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", err
			}
			return strings.TrimRight(string(b), "\x00"), nil
		}
	}
	return "", nil
}

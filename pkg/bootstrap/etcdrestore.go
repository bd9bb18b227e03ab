package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	etcdc "github.com/dk8s/dk8s/pkg/etcd"
	"github.com/dk8s/dk8s/pkg/pki"
)

// RestoreOptions tune RestoreSnapshot.
type RestoreOptions struct {
	// Events hears of every step; nil for silence.
	Events func(Event)
	// Timeout bounds the wait for each component's health; 0 means 3 min.
	Timeout time.Duration
	// Start tunes how the components' health is asked (its Probe).
	Start StartOptions
	// Force restores on a control plane that takes others (--ha) even
	// when etcd cannot say whether other members run.
	Force bool

	// members lists etcd's members; nil asks etcd. A seam for unit tests.
	members func(ctx context.Context) ([]etcdc.Member, error)
	// now is the restore's time; nil means time.Now.
	now func() time.Time
}

// restoreContainer runs etcdutl once, beside the cluster's containers.
const restoreContainer = "dk8s-etcd-restore"

// restoreStops are the components a restore stops, in this order, and
// starts again in the reverse: everything that reads or writes etcd.
var restoreStops = []string{"etcd-snapshotter", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"}

// RestoreSnapshot brings the single-member etcd of the control plane kept
// in cfg.Dir back to the snapshot file. Nothing is changed until the file
// checks out (its .sha256 when there is one, and etcd's own sum), the
// cluster is found to have this member alone, and etcdutl has made a new
// data directory from it. Then the apiserver, the controller-manager, the
// scheduler, the snapshotter and etcd are stopped, DIR/etcd is moved aside
// to DIR/etcd.before-restore-TIME (never deleted), the new data put in its
// place, and the components started again and waited for. An error after
// the move says where the old data is and how to put it back.
func RestoreSnapshot(ctx context.Context, engine containers.Engine, cfg Config, file string, opts RestoreOptions) error {
	emit := func(e Event) {
		if opts.Events != nil {
			opts.Events(e)
		}
	}
	now := time.Now
	if opts.now != nil {
		now = opts.now
	}
	file, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	info, err := etcdc.Verify(file)
	if err != nil {
		return fmt.Errorf("%w; nothing was changed", err)
	}
	emit(Event{Step: "verify", Message: fmt.Sprintf("%s checks out (%d bytes, sha256 %s)", file, info.Size, info.SHA256), Done: true})
	kept, err := ReadSettings(cfg.Dir)
	switch {
	case err != nil:
		return fmt.Errorf("%s is not a control plane's directory (%v): pass the --dir it was started with; nothing was changed", cfg.Dir, err)
	case kept.IsWorker():
		return fmt.Errorf("%s holds a worker: etcd is restored on its control plane; nothing was changed", cfg.Dir)
	case kept.Name != cfg.ClusterName:
		return fmt.Errorf("%s holds the cluster %q, not %q: pass --name %s; nothing was changed", cfg.Dir, kept.Name, cfg.ClusterName, kept.Name)
	}
	if err := cfg.resolveKept(); err != nil {
		return err
	}
	unlock, err := lockDir(ctx, cfg.Dir, 0, emit)
	if err != nil {
		return fmt.Errorf("%w: let it finish, then restore", err)
	}
	defer unlock()
	etcdCtr, err := own(ctx, engine, cfg, "etcd")
	if containers.IsNotFound(err) {
		return fmt.Errorf("this host has no etcd container for %s: 'dk8s start' once, then restore; nothing was changed", cfg.Dir)
	}
	if err != nil {
		return err
	}
	if err := checkSingleMember(ctx, cfg, kept, opts, emit); err != nil {
		return err
	}

	stamp := now().UTC().Format("20060102T150405Z")
	staging := filepath.Join(cfg.Dir, "etcd.restore-"+stamp)
	if err := runEtcdutl(ctx, engine, restoreSpec(cfg, etcdCtr.Image, file, staging)); err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("restoring %s with etcdutl: %w; nothing was changed", file, err)
	}
	emit(Event{Step: "restore", Message: "etcdutl made a new data directory from the snapshot, member " + cfg.NodeName, Done: true})

	for _, comp := range restoreStops {
		if err := stopOwn(ctx, engine, cfg, comp); err != nil {
			os.RemoveAll(staging)
			return fmt.Errorf("stopping %s: %w; etcd's data is untouched: 'dk8s start' brings every component back", comp, err)
		}
		emit(Event{Step: "stop", Component: comp, Message: "stopped " + containerName(comp)})
	}
	data, aside := filepath.Join(cfg.Dir, "etcd"), filepath.Join(cfg.Dir, "etcd.before-restore-"+stamp)
	if err := os.Rename(data, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(staging)
		return fmt.Errorf("moving %s aside: %w; etcd's data is untouched: 'dk8s start' brings every component back", data, err)
	}
	putBack := fmt.Sprintf("the data etcd had before is in %s. To go back to it: 'docker stop %s', 'rm -rf %s', 'mv %s %s', then 'dk8s start --dir %s'",
		aside, containerName("etcd"), data, aside, data, cfg.Dir)
	if err := os.Rename(filepath.Join(staging, "etcd"), data); err != nil {
		return fmt.Errorf("putting the restored data in %s: %w; %s", data, err, putBack)
	}
	os.Remove(staging)
	if err := os.Chmod(data, 0o700); err != nil {
		return fmt.Errorf("%w; %s", err, putBack)
	}
	emit(Event{Step: "restore", Message: fmt.Sprintf("the restored data is in %s, the old in %s", data, aside), Done: true})
	// The etcd it joined once is not its cluster any more: its etcd now
	// starts as a cluster of one.
	if kept.EtcdInitialCluster != "" {
		kept.EtcdInitialCluster, kept.EtcdClusterState = "", ""
		if err := writeSettings(cfg.Dir, *kept); err != nil {
			return fmt.Errorf("%w; %s", err, putBack)
		}
		cfg.EtcdInitialCluster, cfg.EtcdClusterState = "", ""
	}

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	p := &pki.PKI{Dir: cfg.PKIDir()}
	for i := len(restoreStops) - 1; i >= 0; i-- {
		comp := restoreStops[i]
		if err := startOwn(ctx, engine, cfg, comp, p, timeout, opts.Start); err != nil {
			return fmt.Errorf("%w\n%s", err, putBack)
		}
		emit(Event{Step: "healthy", Component: comp, Message: comp + " is healthy", Done: true})
	}
	emit(Event{Step: "restore", Message: fmt.Sprintf("restored from %s; the old data stays in %s until you delete it", filepath.Base(file), aside), Done: true})
	return nil
}

// checkSingleMember refuses a restore of a cluster of several members: a
// snapshot restored on one would split it from the others. An etcd that
// does not answer (its data lost, the disaster a restore is for) cannot be
// asked; this host's member is then restored alone, with a warning.
func checkSingleMember(ctx context.Context, cfg Config, kept *Settings, opts RestoreOptions, emit func(Event)) error {
	list := opts.members
	if list == nil {
		list = func(ctx context.Context) ([]etcdc.Member, error) {
			// The members this one joined are asked too: its own etcd may
			// be the one whose data is lost.
			endpoints := append([]string{etcdc.DefaultEndpoint}, otherMembers(kept.EtcdInitialCluster, kept.NodeName)...)
			c, err := etcdc.New(ctx, endpoints, etcdc.PKIFiles(cfg.PKIDir()))
			if err != nil {
				return nil, err
			}
			defer c.Close()
			return c.Members(ctx)
		}
	}
	askCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ms, err := list(askCtx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if kept.HA && !opts.Force {
			return fmt.Errorf("etcd does not answer (%v), and this control plane takes others (--ha): restoring here while other members run would split the cluster. Check 'dk8s etcd status' on the other control planes; once every other control plane is reset ('dk8s reset --purge' on each), restore here with --force, then join them again; nothing was changed", firstLine(err.Error()))
		}
		emit(Event{Step: "members", Warning: true, Message: fmt.Sprintf("etcd does not answer (%v): restoring it as this host's only member", firstLine(err.Error()))})
		return nil
	}
	if len(ms) > 1 {
		var names []string
		for _, m := range ms {
			names = append(names, m.Name)
		}
		return fmt.Errorf("etcd has %d members (%s): a snapshot is restored on a cluster of one. Reset the other control planes ('dk8s reset' on each), restore here, then join them again; nothing was changed",
			len(ms), strings.Join(names, ", "))
	}
	return nil
}

// restoreSpec is the one-shot container that runs etcdutl on file into
// staging/etcd, for this host's member as etcd.go names it and its peer
// URL, in the image of the etcd the cluster runs.
func restoreSpec(cfg Config, image, file, staging string) containers.Spec {
	f := etcd().Flags(cfg)
	return containers.Spec{
		Name:       restoreContainer,
		Image:      image,
		Entrypoint: []string{"/usr/local/bin/etcdutl"},
		Args: append([]string{"snapshot", "restore", "/snapshot.db"}, containers.Flags(map[string]string{
			"name": f["name"],
			// A cluster of one, whatever it joined once, under a token
			// of its own: a member of the cluster before it, still
			// running somewhere, does not take it for one of its own.
			"initial-cluster":             f["name"] + "=" + f["initial-advertise-peer-urls"],
			"initial-cluster-token":       "dk8s-restored-" + filepath.Base(staging),
			"initial-advertise-peer-urls": f["initial-advertise-peer-urls"],
			"data-dir":                    "/restore/etcd",
			// Revisions move forward, past any a watcher (kubelet, a
			// controller) saw before, and what lies between is marked
			// compacted, so every watch lists afresh: upstream's advice
			// for a Kubernetes etcd.
			"bump-revision":  "1000000000",
			"mark-compacted": "true",
		})...),
		Labels: map[string]string{
			containers.LabelComponent: "etcd-restore",
			containers.LabelCluster:   cfg.ClusterName,
			containers.LabelDir:       cfg.Dir,
		},
		Mounts: []containers.Mount{{Source: file, Target: "/snapshot.db", ReadOnly: true}, {Source: staging, Target: "/restore"}},
		User:   "0:0",
	}.WithHash()
}

// runEtcdutl runs spec to its end and removes it; a non-zero exit comes
// back with its last log lines.
func runEtcdutl(ctx context.Context, engine containers.Engine, spec containers.Spec) error {
	if err := os.MkdirAll(spec.Mounts[1].Source, 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := runOnce(ctx, engine, spec, &out); err != nil {
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		return fmt.Errorf("etcdutl: %w:\n%s", err, indent(strings.Join(lines[max(0, len(lines)-15):], "\n")))
	}
	return nil
}

// stopOwn stops component's container of this cluster; one that is not
// there is stopped already.
func stopOwn(ctx context.Context, engine containers.Engine, cfg Config, component string) error {
	_, err := own(ctx, engine, cfg, component)
	if containers.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return engine.StopContainer(ctx, containerName(component), 30*time.Second)
}

// startOwn starts component's container of this cluster again and waits
// until it answers its probe; one that is not there is left for 'dk8s
// start' to make.
func startOwn(ctx context.Context, engine containers.Engine, cfg Config, component string, p *pki.PKI, timeout time.Duration, opts StartOptions) error {
	name := containerName(component)
	if _, err := own(ctx, engine, cfg, component); containers.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if err := engine.StartContainer(ctx, name); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	if err := waitProbe(ctx, p, component, timeout, opts); err != nil {
		c, _ := componentNamed(component)
		return &ComponentError{Component: component, Err: fmt.Errorf("not healthy: %w", err), Logs: lastLogs(engine, name, 15), Hint: c.Hint}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

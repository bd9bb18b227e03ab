package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/bundle"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
)

// bundleBinaries are the host binaries a bundle carries, by their names in
// the lock and their parts.
var bundleBinaries = []struct{ name, part string }{
	{"kubelet", bundle.Kubelet},
	{"kubectl", bundle.Kubectl},
}

// binaryPin is the sha256 rel pins for name on platform, or an error that
// says the bundle cannot carry or take it.
func binaryPin(rel *images.Release, name, platform, lockSource string) (string, error) {
	if _, want, err := host.Pinned(rel, name, platform); err == nil {
		return want, nil
	}
	return "", fmt.Errorf("%s pins no sha256 for %s %s on %s, so a bundle's %s cannot be checked: use a lock that pins it (--lock; docs/pins.md says how)",
		lockSource, name, rel.Kubernetes, platform, name)
}

type saveBundleFlags struct {
	dir, binaryMirrors string
}

// runSaveBundle writes the air-gap bundle of rel for platform to out.
func runSaveBundle(ctx context.Context, g *globals, f *saveBundleFlags, out, platform string) error {
	_, rel, err := g.release()
	if err != nil {
		return err
	}
	dir, err := bootstrap.AbsDir(f.dir)
	if err != nil {
		return err
	}
	binMirrors, err := binaryMirrors(f.binaryMirrors, nil)
	if err != nil {
		return err
	}
	engine, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	if platform, err = images.ResolvePlatform(ctx, engine, platform); err != nil {
		return err
	}
	// Every pin is checked before the long part: a bundle carries only
	// what the machine that loads it can check.
	for _, b := range bundleBinaries {
		if _, err := binaryPin(rel, b.name, platform, g.lockSource()); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this dk8s binary: %w", err)
	}
	if err := host.CheckStatic(self); err != nil {
		return fmt.Errorf("this dk8s cannot be the node agent's: %w", err)
	}
	spoolDir := os.TempDir()
	if out != "-" {
		spoolDir = filepath.Dir(out)
	}
	spool, err := os.MkdirTemp(spoolDir, ".dk8s-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spool)

	files := map[string]string{bundle.DK8s: self, bundle.Images: filepath.Join(spool, "images.tar")}
	fmt.Fprintf(g.streams.Err, "Saving %d images of Kubernetes %s for %s\n", len(rel.Images), rel.Kubernetes, platform)
	if err := saveImagesTo(ctx, engine, rel, platform, files[bundle.Images]); err != nil {
		return err
	}
	fetch := &host.Fetcher{Mirrors: binMirrors, Platform: platform, Events: newBinaryView(g.streams.Err).event}
	for _, b := range bundleBinaries {
		want, _ := binaryPin(rel, b.name, platform, g.lockSource())
		// The cluster directory's own copy, when it is the pinned file:
		// nothing is fetched twice, and nothing is written there.
		have := filepath.Join(dir, "bin", b.name)
		if _, ok := host.Holds(have, want); ok {
			fmt.Fprintf(g.streams.Err, "%s %s %s: from %s\n", b.name, rel.Kubernetes, platform, have)
			files[b.part] = have
			continue
		}
		got, err := fetch.Fetch(ctx, rel, b.name, filepath.Join(spool, b.name))
		if err != nil {
			return fmt.Errorf("%s %s for the bundle: %w", b.name, rel.Kubernetes, err)
		}
		files[b.part] = got.Path
	}

	var w io.Writer = g.streams.Out
	var pending *os.File
	if out != "-" {
		if pending, err = os.Create(out + ".partial"); err != nil {
			return err
		}
		defer os.Remove(pending.Name())
		defer pending.Close()
		w = pending
	}
	m := bundle.Manifest{Kubernetes: rel.Kubernetes, Platform: platform, DK8s: Version}
	if err := bundle.Write(w, m, files); err != nil {
		return err
	}
	if pending != nil {
		if err := pending.Close(); err != nil {
			return err
		}
		if err := os.Rename(pending.Name(), out); err != nil {
			return err
		}
		fmt.Fprintf(g.streams.Err, "Wrote %s: %d images, kubelet, kubectl and dk8s %s; on the machine with no registry:\n  tar -xf %s %s && ./%s load --bundle %s\n",
			out, len(rel.Images), Version, filepath.Base(out), bundle.DK8s, bundle.DK8s, filepath.Base(out))
	}
	return nil
}

func saveImagesTo(ctx context.Context, engine engine, rel *images.Release, platform, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := images.Save(ctx, engine, rel, platform, f); err != nil {
		return err
	}
	return f.Close()
}

// runLoadBundle takes in a bundle whole, or nothing of it: every part is
// checked against what this dk8s trusts (its lock, itself) before any of
// it is named or installed.
func runLoadBundle(ctx context.Context, g *globals, f *loadFlags) (err error) {
	lock, err := g.readLock()
	if err != nil {
		return err
	}
	dir, err := bootstrap.AbsDir(f.dir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this dk8s binary: %w", err)
	}
	var r io.Reader = g.streams.In
	spoolDir := filepath.Dir(dir)
	if f.bundle != "-" {
		file, err := os.Open(f.bundle)
		if err != nil {
			return err
		}
		defer file.Close()
		r, spoolDir = file, filepath.Dir(f.bundle)
	}
	engine, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	platform, err := images.ResolvePlatform(ctx, engine, f.platform)
	if err != nil {
		return err
	}
	spool, err := os.MkdirTemp(spoolDir, ".dk8s-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spool)

	refused := func(err error) error {
		return fmt.Errorf("%w; nothing of the bundle was loaded or installed", err)
	}
	fmt.Fprintf(g.streams.Err, "Checking %s against %s\n", f.bundle, g.lockSource())
	m, err := bundle.Unpack(r, spool)
	if err != nil {
		return refused(err)
	}
	if m.Platform != platform {
		return refused(fmt.Errorf("the bundle is for %s, and this machine's Docker runs %s: make one with 'dk8s save --bundle FILE --platform %s'", m.Platform, platform, platform))
	}
	if g.version != "" && strings.TrimPrefix(g.version, "v") != strings.TrimPrefix(m.Kubernetes, "v") {
		return refused(fmt.Errorf("the bundle holds Kubernetes %s, not %s", m.Kubernetes, g.version))
	}
	rel, err := lock.Release(m.Kubernetes)
	if err != nil {
		return refused(fmt.Errorf("the bundle holds Kubernetes %s, which %s has no release of (it has %s): load it with --lock naming a lock that has it",
			m.Kubernetes, g.lockSource(), strings.Join(lock.Versions(), ", ")))
	}
	for _, b := range bundleBinaries {
		want, err := binaryPin(rel, b.name, platform, g.lockSource())
		if err != nil {
			return refused(err)
		}
		// Unpack checked the file against the manifest's sum.
		if p, _ := m.Part(b.part); p.SHA256 != want {
			return refused(fmt.Errorf("the bundle's %s is not the %s %s for %s that %s pins: sha256 %s, pinned %s", b.name, b.name, rel.Kubernetes, platform, g.lockSource(), p.SHA256, want))
		}
	}
	// A cluster of another release keeps the kubelet it runs, as under
	// 'dk8s pull': 'dk8s start --kubernetes-version' takes the new one.
	installBinaries := true
	if s, err := bootstrap.ReadSettings(dir); err == nil && s.KubernetesVersion != "" && s.KubernetesVersion != rel.Kubernetes {
		installBinaries = false
	}

	imgs, err := os.Open(filepath.Join(spool, bundle.Images))
	if err != nil {
		return err
	}
	defer imgs.Close()
	staged, err := images.Stage(ctx, engine, lock, imgs, images.LoadOptions{
		Platform: platform, Kubernetes: m.Kubernetes, RequireVerified: f.requireVerified,
	})
	if err != nil {
		return refused(err)
	}
	defer func() { err = errors.Join(err, staged.Close(ctx)) }()
	if failed := staged.Failed(); len(failed) > 0 {
		if perr := printLoaded(g, staged.Loaded()); perr != nil {
			return perr
		}
		return refused(&images.PullError{Failed: failed})
	}

	// Everything checked: now name and install.
	loaded, err := staged.Commit(ctx)
	if perr := printLoaded(g, loaded); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	for _, b := range bundleBinaries {
		dst := filepath.Join(dir, "bin", b.name)
		if !installBinaries {
			fmt.Fprintf(g.streams.Err, "%s %s: not installed: the cluster in %s runs another release, and %s/bin holds its own\n", b.name, rel.Kubernetes, dir, dir)
			continue
		}
		if _, err := host.Install(filepath.Join(spool, filepath.FromSlash(b.part)), dst); err != nil {
			return err
		}
		fmt.Fprintf(g.streams.Err, "%s %s: installed at %s, its sha256 the one %s pins\n", b.name, rel.Kubernetes, dst, g.lockSource())
	}
	// The agent's image is this dk8s alone, whichever dk8s wrote the
	// bundle: it is the one that runs the node.
	p, _ := m.Part(bundle.DK8s)
	if _, ok := host.Holds(self, p.SHA256); !ok {
		fmt.Fprintf(g.streams.Err, "This dk8s is not the bundle's (dk8s %s): the agent's image is made from this one\n", m.DK8s)
	}
	agent := defaultAgentImage(g)
	if err := bootstrap.AgentImage(ctx, engine, self, agent); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Err, "%s: made from %s\nLoaded. Start a node with 'dk8s start', or join one with the line 'dk8s token create --print-join-command' prints\n", agent, self)
	return nil
}

package containers

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker is an Engine backed by a Docker daemon.
type Docker struct {
	c *client.Client
}

var _ Engine = (*Docker)(nil)

// FromEnv connects to the daemon that DOCKER_HOST (or the default socket)
// names, negotiating the API version down to the daemon's, and checks that
// it answers, so that a daemon that is not there is reported once, clearly.
func FromEnv(ctx context.Context) (*Docker, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("configuring the Docker client (check DOCKER_HOST): %w", err)
	}
	d := &Docker{c: c}
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot reach the Docker daemon at %s: %w; is dockerd running, and may this user use its socket? (set DOCKER_HOST to use another)", c.DaemonHost(), err)
	}
	return d, nil
}

// Close releases the client's connections.
func (d *Docker) Close() error { return d.c.Close() }

// Version implements Engine.
func (d *Docker) Version(ctx context.Context) (Version, error) {
	v, err := d.c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return Version{}, fmt.Errorf("asking the Docker daemon its version: %w", err)
	}
	info, err := d.c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Version{}, fmt.Errorf("asking the Docker daemon for its info: %w", err)
	}
	store := "classic"
	if strings.Contains(info.Info.Driver, "snapshotter") || strings.Contains(fmt.Sprint(info.Info.DriverStatus), "io.containerd.snapshotter") {
		store = "containerd"
	}
	out := Version{Server: v.Version, APIVersion: d.c.ClientVersion(), OS: v.Os, Arch: v.Arch, Store: store}
	if rc := info.Info.RegistryConfig; rc != nil {
		for _, cidr := range rc.InsecureRegistryCIDRs {
			out.Insecure = append(out.Insecure, cidr.String())
		}
		for name, ic := range rc.IndexConfigs {
			if ic != nil && !ic.Secure {
				out.Insecure = append(out.Insecure, name)
			}
		}
		sort.Strings(out.Insecure)
		out.RegistryMirrors = append(out.RegistryMirrors, rc.Mirrors...)
	}
	return out, nil
}

// PullImage implements Engine.
func (d *Docker) PullImage(ctx context.Context, ref string, opts PullOptions) error {
	po := client.ImagePullOptions{RegistryAuth: opts.Auth}
	if opts.Platform != "" {
		p, err := ParsePlatform(opts.Platform)
		if err != nil {
			return err
		}
		po.Platforms = []ocispec.Platform{p}
	}
	resp, err := d.c.ImagePull(ctx, ref, po)
	if err != nil {
		return wrapErr(err)
	}
	defer resp.Close()
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return wrapErr(err)
		}
		if msg.Error != nil {
			return wrapErr(msg.Error)
		}
		if opts.Progress != nil && msg.ID != "" {
			lp := LayerProgress{Layer: msg.ID, Status: msg.Status}
			if msg.Progress != nil {
				lp.Current, lp.Total = msg.Progress.Current, msg.Progress.Total
			}
			opts.Progress(lp)
		}
	}
	return ctx.Err()
}

// InspectImage implements Engine.
func (d *Docker) InspectImage(ctx context.Context, ref string) (Image, error) {
	res, err := d.c.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, wrapErr(err)
	}
	img := Image{ID: res.ID, RepoTags: res.RepoTags, RepoDigests: res.RepoDigests}
	img.Platform = res.Os + "/" + res.Architecture
	if res.Variant != "" {
		img.Platform += "/" + res.Variant
	}
	if res.RootFS.Layers != nil {
		img.Layers = res.RootFS.Layers
	}
	return img, nil
}

// TagImage implements Engine.
func (d *Docker) TagImage(ctx context.Context, source, target string) error {
	_, err := d.c.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target})
	return wrapErr(err)
}

// UntagImage implements Engine.
func (d *Docker) UntagImage(ctx context.Context, ref string) error {
	_, err := d.c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: false, PruneChildren: false})
	return wrapErr(err)
}

// SaveImages implements Engine.
func (d *Docker) SaveImages(ctx context.Context, refs []string) (io.ReadCloser, error) {
	rc, err := d.c.ImageSave(ctx, refs)
	return rc, wrapErr(err)
}

// LoadImages implements Engine.
func (d *Docker) LoadImages(ctx context.Context, archive io.Reader) error {
	res, err := d.c.ImageLoad(ctx, archive, client.ImageLoadWithQuiet(true))
	if err != nil {
		return wrapErr(err)
	}
	return streamError(res, "loading images")
}

// streamError reads the daemon's response stream to its end and returns
// the error it reports there: a bad archive or layer is told in the
// stream, not by the status code.
func streamError(res io.ReadCloser, what string) error {
	defer res.Close()
	out, err := io.ReadAll(res)
	if err != nil {
		return wrapErr(err)
	}
	if strings.Contains(string(out), `"errorDetail"`) {
		return fmt.Errorf("%s: %s", what, strings.TrimSpace(string(out)))
	}
	return nil
}

// ImportImage implements Engine.
func (d *Docker) ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error {
	res, err := d.c.ImageImport(ctx, client.ImageImportSource{Source: rootfs, SourceName: "-"}, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return wrapErr(err)
	}
	return streamError(res, "importing "+ref)
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("platform %q must be OS/ARCH[/VARIANT], e.g. linux/amd64", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// wrapErr makes "does not exist" answers of the daemon match ErrNotFound,
// keeping the daemon's own words as the message.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "manifest unknown") {
		return notFound{err}
	}
	return err
}

type notFound struct{ err error }

func (e notFound) Error() string        { return e.err.Error() }
func (e notFound) Unwrap() error        { return e.err }
func (e notFound) Is(target error) bool { return target == ErrNotFound }

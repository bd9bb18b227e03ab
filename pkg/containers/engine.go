package containers

import (
	"context"
	"errors"
	"io"
	"time"
)

// Engine is what dk8s needs of a Docker daemon.
type Engine interface {
	// Version reports the daemon's version and the API version in use.
	Version(ctx context.Context) (Version, error)
	// PullImage pulls ref, reporting the Engine's per-layer progress.
	PullImage(ctx context.Context, ref string, opts PullOptions) error
	// InspectImage returns what the daemon knows of ref, or an error that
	// satisfies IsNotFound.
	InspectImage(ctx context.Context, ref string) (Image, error)
	// TagImage gives the image source the name target.
	TagImage(ctx context.Context, source, target string) error
	// UntagImage removes the name ref. The image's content goes only when
	// ref was its last name, and never by force.
	UntagImage(ctx context.Context, ref string) error
	// SaveImages streams refs as a `docker save` archive.
	SaveImages(ctx context.Context, refs []string) (io.ReadCloser, error)
	// LoadImages loads a `docker save` archive.
	LoadImages(ctx context.Context, archive io.Reader) error
	// ImportImage makes the image ref of one layer, the tar stream
	// rootfs, with the Dockerfile instructions changes (ENTRYPOINT, CMD,
	// LABEL...) applied: `docker import`.
	ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error

	// CreateContainer makes the container s describes, without starting it.
	CreateContainer(ctx context.Context, s Spec) (string, error)
	StartContainer(ctx context.Context, name string) error
	// StopContainer stops name, killing it after grace.
	StopContainer(ctx context.Context, name string, grace time.Duration) error
	RemoveContainer(ctx context.Context, name string) error
	// InspectContainer returns name, or an error that satisfies IsNotFound.
	InspectContainer(ctx context.Context, name string) (Container, error)
	ListContainers(ctx context.Context, labels map[string]string) ([]Container, error)
	ContainerLogs(ctx context.Context, name string, opts LogsOptions, stdout, stderr io.Writer) error
}

// Version is the daemon's version.
type Version struct {
	Server     string // e.g. 20.10.24
	APIVersion string // the API version this client talks, after negotiation
	OS, Arch   string
	// Store is "containerd" where Docker keeps images in containerd's store
	// (image IDs are manifest digests), "classic" otherwise (image IDs are
	// config digests).
	Store string
	// Insecure are the registries the daemon reaches over plain HTTP: the
	// CIDRs and HOST:PORT names of its --insecure-registry.
	Insecure []string
	// RegistryMirrors are the daemon's mirrors of Docker Hub
	// ("registry-mirrors" in daemon.json): it pulls a docker.io name
	// through them before Docker Hub itself.
	RegistryMirrors []string
}

// PullOptions tune PullImage.
type PullOptions struct {
	// Platform is "os/arch[/variant]"; empty means the daemon's own.
	Platform string
	// Auth is the base64 X-Registry-Auth value; empty for anonymous pulls.
	Auth string
	// Progress, when set, receives every progress message of the pull.
	Progress func(LayerProgress)
}

// LayerProgress is one progress message of a pull: a layer's status
// ("Downloading", "Extracting", "Pull complete", ...) and its byte counts.
type LayerProgress struct {
	Layer   string
	Status  string
	Current int64
	Total   int64
}

// Image is what InspectImage reports.
type Image struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
	Platform    string // os/arch[/variant]
	// Layers are the diff IDs of the image's root file system.
	Layers []string
}

// ErrNotFound is wrapped by the errors of calls naming an image or container
// the daemon does not have.
var ErrNotFound = errors.New("not found")

// IsNotFound tells whether err says that an image, container, tag or
// registry manifest does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

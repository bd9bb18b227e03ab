package images

import (
	"context"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// Status is what the Docker image store holds of one image of the lock.
type Status struct {
	Component string `json:"component"`
	Name      string `json:"name"`
	MirrorRef string `json:"mirrorRef,omitempty"`
	// Pinned tells whether the lock holds a digest to check the image by.
	Pinned  bool   `json:"pinned"`
	Present bool   `json:"present"`
	Verdict string `json:"verified"`
	Detail  string `json:"detail,omitempty"`
}

// Inspect reports, for every image of rel, its name on m (when a mirror is
// given and serves the image's registry), whether Docker has it under its
// canonical name, and whether that image matches the lock for platform (""
// means the daemon's own).
func Inspect(ctx context.Context, engine containers.Engine, rel *Release, m *mirror.Mirror, platform string) ([]Status, error) {
	platform, err := ResolvePlatform(ctx, engine, platform)
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, img := range rel.Images {
		st := Status{Component: img.Component, Name: img.Name, Pinned: img.Known(), Verdict: "-"}
		if m != nil {
			// Empty where the mirror does not serve the image's registry.
			st.MirrorRef, _ = m.Ref(img.Name)
		}
		got, err := engine.InspectImage(ctx, img.Name)
		switch {
		case containers.IsNotFound(err):
		case err != nil:
			return nil, err
		default:
			v := Verify(img, got, platform)
			st.Present, st.Verdict, st.Detail = true, v.Verdict.String(), v.Detail
		}
		out = append(out, st)
	}
	return out, nil
}

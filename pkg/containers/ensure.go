package containers

import (
	"context"
	"fmt"
	"time"
)

// Action is what Ensure did to make a container match its spec.
type Action string

// The actions Ensure reports, as `dk8s start` prints them.
const (
	Created   Action = "created"
	Started   Action = "started"
	Replaced  Action = "replaced"
	Unchanged Action = "unchanged"
)

// Ensured is Ensure's answer: what it did and, for a replacement, why.
type Ensured struct {
	Action Action
	Why    string
}

func (e Ensured) String() string {
	if e.Why != "" {
		return string(e.Action) + " (" + e.Why + ")"
	}
	return string(e.Action)
}

// Ensure makes the container spec names match spec, reconciling by the
// labels dk8s puts on it: nothing when its spec hash and image content are
// the same (a rerun changes nothing), a start when it is merely stopped, a
// replacement when its spec or its image's content changed. A container of
// that name that dk8s did not make, or that belongs to the cluster kept in
// another directory, is refused, never taken over.
func Ensure(ctx context.Context, engine Engine, spec Spec) (Ensured, error) {
	cur, err := engine.InspectContainer(ctx, spec.Name)
	switch {
	case IsNotFound(err):
		if _, err := engine.CreateContainer(ctx, spec); err != nil {
			return Ensured{}, err
		}
		return Ensured{Action: Created}, engine.StartContainer(ctx, spec.Name)
	case err != nil:
		return Ensured{}, err
	case cur.Labels[LabelComponent] == "":
		return Ensured{}, fmt.Errorf("a container named %s exists that dk8s did not make; rename or remove it ('docker rm %s') and run start again", spec.Name, spec.Name)
	case cur.Labels[LabelDir] != spec.Labels[LabelDir]:
		// One host runs one cluster: the ports are fixed.
		return Ensured{}, fmt.Errorf("%s runs the control plane kept in %s; this host runs one at a time: 'dk8s reset --dir %s' first (its data stays)",
			spec.Name, cur.Labels[LabelDir], cur.Labels[LabelDir])
	}
	why := "its configuration changed"
	if cur.Labels[LabelSpecHash] == spec.Labels[LabelSpecHash] {
		if sameImage(ctx, engine, cur, spec.Image) {
			if cur.Running || cur.State == "restarting" {
				return Ensured{Action: Unchanged}, nil
			}
			return Ensured{Action: Started}, engine.StartContainer(ctx, spec.Name)
		}
		why = "its image " + spec.Image + " changed"
	}
	if err := engine.StopContainer(ctx, spec.Name, 30*time.Second); err != nil && !IsNotFound(err) {
		return Ensured{}, err
	}
	if err := engine.RemoveContainer(ctx, spec.Name); err != nil && !IsNotFound(err) {
		return Ensured{}, err
	}
	if _, err := engine.CreateContainer(ctx, spec); err != nil {
		return Ensured{}, err
	}
	return Ensured{Action: Replaced, Why: why}, engine.StartContainer(ctx, spec.Name)
}

// sameImage tells whether the container runs the content its image name
// names now: a re-pull can change it under the same name.
func sameImage(ctx context.Context, engine Engine, cur Container, image string) bool {
	img, err := engine.InspectImage(ctx, image)
	return err != nil || cur.ImageID == "" || img.ID == cur.ImageID
}

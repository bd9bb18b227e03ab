// Package kubeobj is what dk8s's packages share in making objects in a
// cluster: the label that marks them dk8s's, and making one unless it
// exists.
package kubeobj

import (
	"context"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManagedByLabel, set to "dk8s", marks every object dk8s makes in a
// cluster.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// Managed is the labels of an object dk8s makes: extra, and
// ManagedByLabel. Each call makes a new map.
func Managed(extra map[string]string) map[string]string {
	l := maps.Clone(extra)
	if l == nil {
		l = map[string]string{}
	}
	l[ManagedByLabel] = "dk8s"
	return l
}

// IsManaged says whether labels mark an object as dk8s's.
func IsManaged(labels map[string]string) bool { return labels[ManagedByLabel] == "dk8s" }

// Create makes obj with fn (a typed client's Create) unless it exists:
// what dk8s makes in a cluster is its default, and a user who changed one
// keeps the change. what names obj in the error.
func Create[T any](ctx context.Context, what string, fn func(context.Context, T, metav1.CreateOptions) (T, error), obj T) error {
	if _, err := fn(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", what, err)
	}
	return nil
}

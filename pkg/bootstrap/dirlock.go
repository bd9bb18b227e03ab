package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	waitpkg "github.com/dk8s/dk8s/internal/wait"
)

// ErrBusy says another start holds the cluster directory.
var ErrBusy = errors.New("another dk8s start is running on this cluster directory")

// lockDir takes an exclusive lock on the cluster directory, so that two
// starts never half-make one cluster: the second waits up to wait, then
// gives up with ErrBusy.
func lockDir(ctx context.Context, dir string, wait time.Duration, emit func(Event)) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	try := func() (bool, error) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil && !errors.Is(err, syscall.EWOULDBLOCK) {
			return false, err
		}
		return err == nil, nil
	}
	got, err := try()
	if err == nil && !got && wait > 0 {
		emit(Event{Step: "lock", Message: "another dk8s start is running; waiting for it"})
		err = waitpkg.Until(ctx, 200*time.Millisecond, wait, func(context.Context) (bool, string, error) {
			ok, err := try()
			return ok, "locked", err
		})
		got = err == nil
		if errors.Is(err, waitpkg.ErrTimeout) {
			err = nil
		}
	}
	switch {
	case err != nil:
		f.Close()
		return nil, err
	case !got:
		f.Close()
		return nil, fmt.Errorf("%w (%s is locked); wait for it to finish, or pass --wait", ErrBusy, dir)
	}
	return func() { f.Close() }, nil
}

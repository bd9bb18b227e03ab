package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
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
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w (%s is locked); wait for it to finish, or pass --wait", ErrBusy, dir)
		}
		if !told {
			emit(Event{Step: "lock", Message: "another dk8s start is running; waiting for it"})
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

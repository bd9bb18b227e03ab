// Package wait is dk8s's one way to wait for something: poll a condition
// until it holds, the context ends or a timeout passes, and say what was
// last seen when it did not.
package wait

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Condition reports whether what is waited for holds. state says what was
// seen when it does not ("HTTP 503", "not registered"); err is a failure
// that makes waiting pointless, and ends it at once.
type Condition func(ctx context.Context) (done bool, state string, err error)

// ErrTimeout is wrapped by the error Until returns when time ran out.
var ErrTimeout = errors.New("timed out")

// Until polls cond every interval until it holds. When timeout (if not 0)
// passes first, the error wraps ErrTimeout and names the last state seen;
// when ctx ends, it wraps ctx's error.
func Until(ctx context.Context, interval, timeout time.Duration, cond Condition) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	last := "nothing seen yet"
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, state, err := cond(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		// A state seen after the time ran out is the cut-short poll's own
		// ("context deadline exceeded"), not what was waited for: keep the
		// one before it.
		if state != "" && ctx.Err() == nil {
			last = state
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
				return fmt.Errorf("%w after %s; last seen: %s", ErrTimeout, timeout, last)
			}
			return fmt.Errorf("%w; last seen: %s", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

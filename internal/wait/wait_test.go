package wait

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	err := Until(context.Background(), time.Millisecond, time.Second, func(context.Context) (bool, string, error) {
		n++
		return n == 3, "try " + string(rune('0'+n)), nil
	})
	if err != nil || n != 3 {
		t.Fatalf("got %v after %d tries", err, n)
	}
	err = Until(context.Background(), time.Millisecond, 20*time.Millisecond, func(context.Context) (bool, string, error) {
		return false, "HTTP 503", nil
	})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "last seen: HTTP 503") {
		t.Errorf("a timeout should name the last state: %v", err)
	}
	boom := errors.New("boom")
	if err := Until(context.Background(), time.Millisecond, 0, func(context.Context) (bool, string, error) { return false, "", boom }); err != boom {
		t.Errorf("a failure ends the wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Until(ctx, time.Millisecond, time.Second, func(context.Context) (bool, string, error) { return false, "x", nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled context ends the wait: %v", err)
	}
}

// A poll cut short by the deadline says so ("context deadline exceeded");
// the error names what was seen before it instead.
func TestUntilKeepsTheStateBeforeTheDeadline(t *testing.T) {
	// Each poll takes 20 ms, so the second is cut short at 30 ms.
	err := Until(context.Background(), time.Millisecond, 30*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		select {
		case <-ctx.Done():
			return false, ctx.Err().Error(), nil
		case <-time.After(20 * time.Millisecond):
			return false, "pod kube-proxy-a: CreateContainerError", nil
		}
	})
	if err == nil || !strings.Contains(err.Error(), "last seen: pod kube-proxy-a: CreateContainerError") {
		t.Errorf("the state before the deadline should be named: %v", err)
	}
}

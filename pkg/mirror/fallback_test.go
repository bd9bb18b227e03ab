package mirror

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v7"
)

var (
	errMissing = errors.New("not found")
	errFlaky   = errors.New("503")
	errRefused = errors.New("connection refused")
)

func testFallback(names ...string) *Fallback {
	var ms []Mirror
	for _, n := range names {
		ms = append(ms, Mirror{Name: n, Prefix: n})
	}
	return &Fallback{
		Mirrors: ms,
		Classify: func(err error) Class {
			switch err {
			case errFlaky:
				return Temporary
			case errRefused:
				return Unreachable
			}
			return Permanent
		},
		NewBackOff: func() backoff.BackOff { return &backoff.ZeroBackOff{} },
	}
}

func TestFallbackMovesOnAtPermanentErrors(t *testing.T) {
	f := testFallback("a", "b", "c")
	var calls []string
	m, tried, err := f.Do(context.Background(), func(_ context.Context, m Mirror) error {
		calls = append(calls, m.Name)
		if m.Name == "a" {
			return errMissing
		}
		return nil
	})
	if err != nil || m.Name != "b" {
		t.Fatalf("got %v, %v; want b", m.Name, err)
	}
	if strings.Join(calls, ",") != "a,b" || len(tried) != 1 || tried[0].Err != errMissing {
		t.Errorf("calls %v, tried %v", calls, tried)
	}
}

func TestFallbackRetriesTemporaryErrors(t *testing.T) {
	f := testFallback("a", "b")
	f.Tries = 3
	n := 0
	m, _, err := f.Do(context.Background(), func(_ context.Context, m Mirror) error {
		n++
		if n < 3 {
			return errFlaky
		}
		return nil
	})
	if err != nil || m.Name != "a" || n != 3 {
		t.Errorf("got %v, %v after %d calls; want a after 3", m.Name, err, n)
	}
}

func TestFallbackSkipsMirrorFoundDown(t *testing.T) {
	f := testFallback("dead", "good")
	f.Tries = 2
	deadCalls := 0
	attempt := func(_ context.Context, m Mirror) error {
		if m.Name == "dead" {
			deadCalls++
			return errRefused
		}
		return nil
	}
	for i := 0; i < 3; i++ {
		m, tried, err := f.Do(context.Background(), attempt)
		if err != nil || m.Name != "good" {
			t.Fatalf("round %d: %v, %v", i, m.Name, err)
		}
		if i > 0 && !errors.Is(tried[0].Err, ErrDown) {
			t.Errorf("round %d: dead mirror should be skipped, got %v", i, tried[0].Err)
		}
	}
	if deadCalls != 2 {
		t.Errorf("the dead mirror was tried %d times, want 2 (its retries, then never again)", deadCalls)
	}
}

func TestFallbackExhausted(t *testing.T) {
	f := testFallback("a", "b")
	_, _, err := f.Do(context.Background(), func(context.Context, Mirror) error { return errMissing })
	var ex *ExhaustedError
	if !errors.As(err, &ex) || len(ex.Tried) != 2 || !errors.Is(err, errMissing) {
		t.Fatalf("got %v", err)
	}
	if want := "every mirror failed: a: not found; b: not found"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestFallbackStopsWhenCancelled(t *testing.T) {
	f := testFallback("a", "b")
	f.NewBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error)
	go func() {
		_, _, err := f.Do(ctx, func(context.Context, Mirror) error { calls++; cancel(); return errFlaky })
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("got %v after %d calls", err, calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do did not return when its context was cancelled")
	}
}

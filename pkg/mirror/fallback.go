package mirror

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v7"
)

// Class sorts a failed attempt by what is worth doing next.
type Class int

const (
	// Permanent failures (the tag is missing, access is denied, the content
	// does not verify) move on to the next mirror at once.
	Permanent Class = iota
	// Temporary failures (a 5xx, a reset connection, a timeout) are retried
	// on the same mirror with backoff.
	Temporary
	// Unreachable failures (connection refused, no such host) are retried
	// like temporary ones; if they persist the mirror is taken as down and
	// skipped for every later image of the same Fallback.
	Unreachable
)

// Fallback tries an ordered list of mirrors for one piece of work at a time.
// It is safe for concurrent use, so that one mirror found down is skipped by
// every image pulled in parallel after that.
type Fallback struct {
	Mirrors []Mirror
	// Classify sorts an attempt's error; nil treats every error as Permanent.
	Classify func(error) Class
	// Tries bounds the attempts per mirror for Temporary and Unreachable
	// errors; 0 means 3.
	Tries uint
	// NewBackOff makes the wait between retries; nil means exponential from
	// 500ms.
	NewBackOff func() backoff.BackOff
	// OnRetry, when set, hears of each retry before its wait.
	OnRetry func(m Mirror, err error, wait time.Duration)

	down DownSet
}

// Attempt does the work against one mirror.
type Attempt func(ctx context.Context, m Mirror) error

// Tried is one mirror's failed attempt.
type Tried struct {
	Mirror Mirror
	Err    error
}

// ExhaustedError says that no mirror could do the work, and why each failed.
type ExhaustedError struct {
	Tried []Tried
}

func (e *ExhaustedError) Error() string {
	var parts []string
	for _, t := range e.Tried {
		parts = append(parts, fmt.Sprintf("%s: %v", t.Mirror.Name, t.Err))
	}
	return "every mirror failed: " + strings.Join(parts, "; ")
}

// Unwrap exposes each mirror's error to errors.Is and errors.As.
func (e *ExhaustedError) Unwrap() []error {
	var errs []error
	for _, t := range e.Tried {
		errs = append(errs, t.Err)
	}
	return errs
}

// ErrDown is the error recorded for a mirror skipped because an earlier
// attempt found it down.
var ErrDown = errors.New("skipped: unreachable earlier in this run")

// Do runs attempt against each mirror in order until one succeeds, and
// returns that mirror and the failures before it. It stops at once when ctx
// ends, returning ctx's error.
func (f *Fallback) Do(ctx context.Context, attempt Attempt) (Mirror, []Tried, error) {
	return f.DoNotify(ctx, attempt, f.OnRetry)
}

// DoNotify is Do with its own retry hook in place of OnRetry, for a caller
// that runs several pieces of work at once and must say which one retries.
func (f *Fallback) DoNotify(ctx context.Context, attempt Attempt, onRetry func(m Mirror, err error, wait time.Duration)) (Mirror, []Tried, error) {
	var tried []Tried
	for _, m := range f.Mirrors {
		if f.isDown(m) {
			tried = append(tried, Tried{m, ErrDown})
			continue
		}
		err := f.try(ctx, m, attempt, onRetry)
		if err == nil {
			return m, tried, nil
		}
		if ctx.Err() != nil {
			return Mirror{}, tried, ctx.Err()
		}
		tried = append(tried, Tried{m, err})
	}
	return Mirror{}, tried, &ExhaustedError{Tried: tried}
}

func (f *Fallback) try(ctx context.Context, m Mirror, attempt Attempt, onRetry func(Mirror, error, time.Duration)) error {
	var last Class
	op := func() (struct{}, error) {
		err := attempt(ctx, m)
		if err == nil {
			return struct{}{}, nil
		}
		last = f.classify(err)
		if last == Permanent || ctx.Err() != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	tries := f.Tries
	if tries == 0 {
		tries = 3
	}
	opts := []backoff.RetryOption{backoff.WithMaxTries(tries), backoff.WithBackOff(f.backOff())}
	if onRetry != nil {
		opts = append(opts, backoff.WithNotify(func(err error, d time.Duration) { onRetry(m, err, d) }))
	}
	_, err := backoff.Retry(ctx, op, opts...)
	if err == nil {
		return nil
	}
	// Report the mirror's own error, not the retry wrapper around it.
	if re := backoff.AsRetryError(err); re != nil && re.LastErr != nil {
		err = re.LastErr
	}
	if last == Unreachable {
		f.markDown(m)
	}
	return err
}

func (f *Fallback) classify(err error) Class {
	if f.Classify == nil {
		return Permanent
	}
	return f.Classify(err)
}

func (f *Fallback) backOff() backoff.BackOff {
	if f.NewBackOff != nil {
		return f.NewBackOff()
	}
	return DefaultBackOff()
}

func (f *Fallback) isDown(m Mirror) bool { return f.down.Has(m.Prefix) }

func (f *Fallback) markDown(m Mirror) { f.down.Mark(m.Prefix) }

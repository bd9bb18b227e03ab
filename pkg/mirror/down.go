package mirror

import (
	"sync"
	"time"

	"github.com/cenkalti/backoff/v7"
)

// DownSet remembers, for one run, the mirrors found unreachable, so that
// the next image or file does not wait on them again. Its zero value is
// empty and ready; it is safe for concurrent use.
type DownSet struct {
	mu   sync.Mutex
	down map[string]bool
}

// Has tells whether key (a mirror's name or prefix) was marked down.
func (d *DownSet) Has(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down[key]
}

// Mark marks key down for the rest of the run.
func (d *DownSet) Mark(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down == nil {
		d.down = map[string]bool{}
	}
	d.down[key] = true
}

// DefaultBackOff is the wait between retries of one mirror: exponential
// from 500ms, at most 5s apart.
func DefaultBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	return b
}

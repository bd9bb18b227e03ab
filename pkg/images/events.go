package images

import (
	"github.com/dk8s/dk8s/pkg/containers"
	"sync"
	"time"
)

// Phase is a step in bringing one image in.
type Phase string

// The phases Pull reports, in the order they happen.
const (
	PhaseChecking  Phase = "checking"
	PhaseSkipped   Phase = "present"
	PhaseReplacing Phase = "replacing"
	PhasePulling   Phase = "pulling"
	PhaseBytes     Phase = "bytes"
	PhaseRetry     Phase = "retry"
	PhaseFallback  Phase = "fallback"
	PhaseDone      Phase = "done"
	PhaseFailed    Phase = "failed"
)

// Event is progress Pull reports: a phase of one image or, for PhaseBytes,
// how many of its bytes have arrived.
type Event struct {
	Image   string // canonical name
	Mirror  string
	Ref     string // the name on the mirror
	Phase   Phase
	Current int64
	Total   int64
	Verification
	Err  error
	Wait time.Duration // for PhaseRetry
}

// progress sums the Engine's per-layer download messages of one pull into
// bytes of total.
type progress struct {
	mu     sync.Mutex
	layers map[string][2]int64
	report func(cur, total int64)
}

func newProgress(report func(cur, total int64)) *progress {
	return &progress{layers: map[string][2]int64{}, report: report}
}

func (p *progress) update(lp containers.LayerProgress) {
	p.mu.Lock()
	l := p.layers[lp.Layer]
	switch lp.Status {
	case "Downloading":
		if lp.Total > 0 {
			l = [2]int64{lp.Current, lp.Total}
		}
	case "Download complete", "Pull complete":
		l[0] = l[1]
	default:
		p.mu.Unlock()
		return
	}
	p.layers[lp.Layer] = l
	var cur, total int64
	for _, v := range p.layers {
		cur, total = cur+v[0], total+v[1]
	}
	p.mu.Unlock()
	p.report(cur, total)
}

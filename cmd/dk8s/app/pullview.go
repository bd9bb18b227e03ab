package app

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dk8s/dk8s/pkg/images"
)

// pullView renders Pull's events: live per-image progress bars on a
// terminal, one plain line per step anywhere else (logs, CI, pipes).
type pullView struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	order []string
	rows  map[string]*pullRow
	drawn int
	done  chan struct{}
	wg    sync.WaitGroup
}

type pullRow struct {
	phase          images.Phase
	mirror, note   string
	current, total int64
}

func newPullView(w io.Writer, rel *images.Release) *pullView {
	v := &pullView{w: w, tty: isTerminal(w), rows: map[string]*pullRow{}, done: make(chan struct{})}
	for _, img := range rel.Images {
		v.order = append(v.order, img.Name)
		v.rows[img.Name] = &pullRow{phase: "waiting"}
	}
	if v.tty {
		v.wg.Add(1)
		go v.loop()
	}
	return v
}

func (v *pullView) event(e images.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.Phase == images.PhaseRetry {
		if !v.tty {
			fmt.Fprintf(v.w, "  %s from %s: retrying in %s: %v\n", e.Image, e.Mirror, e.Wait.Round(100*time.Millisecond), e.Err)
		}
		return
	}
	r := v.rows[e.Image]
	if r == nil {
		return
	}
	if e.Phase == images.PhaseBytes {
		r.current, r.total = e.Current, e.Total
		return
	}
	r.phase = e.Phase
	if e.Mirror != "" {
		r.mirror = e.Mirror
	}
	if e.Phase == images.PhaseFallback {
		if !v.tty {
			fmt.Fprintln(v.w, plainLine(e))
		}
		return
	}
	switch e.Phase {
	case images.PhaseDone, images.PhaseSkipped, images.PhaseReplacing:
		r.note = e.Verdict.String()
	case images.PhaseFailed:
		r.note = firstLine(e.Err)
	case images.PhasePulling:
		r.current, r.total = 0, 0
	}
	if !v.tty && e.Phase != images.PhaseChecking {
		fmt.Fprintln(v.w, plainLine(e))
	}
}

func plainLine(e images.Event) string {
	switch e.Phase {
	case images.PhasePulling:
		return fmt.Sprintf("%s: pulling %s from %s", e.Image, e.Ref, e.Mirror)
	case images.PhaseSkipped:
		return fmt.Sprintf("%s: already present (%s)", e.Image, e.Verdict)
	case images.PhaseReplacing:
		return fmt.Sprintf("%s: present but does not match images.lock (%s); pulling it again", e.Image, e.Detail)
	case images.PhaseDone:
		return fmt.Sprintf("%s: done from %s (%s)", e.Image, e.Mirror, e.Verdict)
	case images.PhaseFallback:
		return fmt.Sprintf("%s: %s refused: %v", e.Image, e.Mirror, e.Err)
	case images.PhaseFailed:
		return fmt.Sprintf("%s: FAILED", e.Image)
	}
	return fmt.Sprintf("%s: %s", e.Image, e.Phase)
}

func (v *pullView) loop() {
	defer v.wg.Done()
	t := time.NewTicker(120 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			v.draw()
		case <-v.done:
			v.draw()
			return
		}
	}
}

func (v *pullView) stop() {
	close(v.done)
	v.wg.Wait()
}

func (v *pullView) draw() {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	width := 0
	for _, name := range v.order {
		width = max(width, len(name))
	}
	for _, name := range v.order {
		r := v.rows[name]
		fmt.Fprintf(&b, "\x1b[2K%s %-*s  %s\n", v.mark(r.phase), width, name, v.status(r))
	}
	v.drawn = len(v.order)
	io.WriteString(v.w, b.String())
}

func (v *pullView) mark(p images.Phase) string {
	switch p {
	case images.PhaseDone, images.PhaseSkipped:
		return color(true, "32", "✓")
	case images.PhaseFailed:
		return color(true, "31", "✗")
	}
	return "•"
}

func (v *pullView) status(r *pullRow) string {
	switch r.phase {
	case images.PhasePulling:
		return fmt.Sprintf("%-10s %s %s", r.mirror, bar(r.current, r.total, 24), bytesOf(r.current, r.total))
	case images.PhaseDone:
		return fmt.Sprintf("%-10s %s", r.mirror, r.note)
	case images.PhaseSkipped:
		return "present, " + r.note
	case images.PhaseFailed:
		return r.note
	}
	return string(r.phase)
}

func bar(cur, total int64, width int) string {
	filled := 0
	if total > 0 {
		filled = int(float64(width) * float64(min(cur, total)) / float64(total))
	}
	return "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "]"
}

func bytesOf(cur, total int64) string {
	mb := func(n int64) float64 { return float64(n) / 1e6 }
	if total == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f/%.1f MB", mb(cur), mb(total))
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

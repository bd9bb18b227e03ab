package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v7"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// ErrUnpinned marks a binary the lock pins no sha256 for on the platform:
// dk8s downloads nothing it cannot check.
var ErrUnpinned = errors.New("a download of it cannot be trusted")

// maxBinary bounds a download: kubelet, the largest, is about 90 MB, and a
// server that streams on and on is not serving one.
const maxBinary = 512 << 20

// Fetcher brings a release's host binaries (kubelet, kubectl) from binary
// mirrors, trying them in order for each file, and keeps a file only when
// its sha256 is the one images.lock pins for the platform. It is safe for
// concurrent use; a mirror found unreachable is skipped for the files after.
type Fetcher struct {
	// Mirrors are tried in order; none means dl.k8s.io itself.
	Mirrors []mirror.BinaryMirror
	// Platform is the "os/arch" to fetch for; "" is this machine's.
	Platform string
	// Client makes the requests; nil is one that honours HTTPS_PROXY and
	// gives up on a server that does not answer within 30s.
	Client *http.Client
	// Events, when set, hears of each step and of the bytes as they come.
	Events func(BinaryEvent)
	// Tries bounds the attempts per mirror at a temporary error (a 5xx, a
	// connection cut short); 0 means 3. NewBackOff makes the wait between
	// them; nil is exponential from 500ms.
	Tries      uint
	NewBackOff func() backoff.BackOff
	// StallTimeout ends a download that receives nothing for that long (a
	// temporary failure, tried again); 0 means a minute.
	StallTimeout time.Duration

	mu   sync.Mutex // guards Client, made on first use
	down mirror.DownSet
}

// Fetched says what Fetch did.
type Fetched struct {
	Path    string
	Mirror  string // "" when the file was there already
	URL     string
	Size    int64
	Present bool // dst held the pinned file already: nothing was fetched
}

// Fetch brings the release's binary name to dst, unless dst holds it
// already. The file goes to a temporary file beside dst as it arrives,
// hashed on the way, and replaces dst (mode 0755) only when it matches the
// lock. A binary the lock does not pin for the platform is refused before
// any request, with an error wrapping ErrUnpinned. When no mirror serves a
// good copy the error is a *FetchError that says what each one did.
func (f *Fetcher) Fetch(ctx context.Context, rel *images.Release, name, dst string) (Fetched, error) {
	platform := f.platform()
	b, want, err := Pinned(rel, name, platform)
	if err != nil {
		return Fetched{}, err
	}
	ev := BinaryEvent{Name: name, Version: rel.Kubernetes, Platform: platform}
	if size, ok := Holds(dst, want); ok {
		ev.Phase, ev.Total = BinaryPresent, size
		f.emit(ev)
		return Fetched{Path: dst, Size: size, Present: true}, nil
	}
	goos, arch, _ := strings.Cut(platform, "/")
	fileURL := strings.NewReplacer("{os}", goos, "{arch}", arch).Replace(b.URL)
	mirrors := f.Mirrors
	if len(mirrors) == 0 {
		mirrors = mirror.ImpliedBinary(nil)
	}
	fe := &FetchError{Name: name, Version: rel.Kubernetes, Platform: platform}
	sources := mirror.BinarySources(mirrors, fileURL)
	for i, src := range sources {
		if f.isDown(src.Mirror) {
			fe.Tried = append(fe.Tried, BinaryTried{src.Mirror.Name, src.URL, mirror.ErrDown})
			continue
		}
		ev.Mirror, ev.URL = src.Mirror.Name, src.URL
		size, err := f.try(ctx, ev, want, dst)
		var local *localError
		if errors.As(err, &local) {
			// This host's fault (a full disk, a directory it cannot
			// write): every mirror would fail the same way.
			return Fetched{}, local
		}
		if err == nil {
			ev.Phase, ev.Total, ev.Current = BinaryDone, size, size
			f.emit(ev)
			return Fetched{Path: dst, Mirror: src.Mirror.Name, URL: src.URL, Size: size}, nil
		}
		if ctx.Err() != nil {
			return Fetched{}, ctx.Err()
		}
		fe.Tried = append(fe.Tried, BinaryTried{src.Mirror.Name, src.URL, err})
		ev.Phase, ev.Err, ev.Next = BinaryFallback, err, ""
		if i+1 < len(sources) {
			ev.Next = sources[i+1].Mirror.Name
		}
		f.emit(ev)
		ev.Err = nil
	}
	return Fetched{}, fe
}

// Pinned finds the release's binary name and the sha256 the lock pins for
// it on platform; the error wraps ErrUnpinned when there is none.
func Pinned(rel *images.Release, name, platform string) (images.Binary, string, error) {
	for _, b := range rel.Binaries {
		if b.Name == name {
			if want := b.SHA256[platform]; want != "" {
				return b, want, nil
			}
			return b, "", fmt.Errorf("images.lock pins no sha256 for %s %s on %s, so %w", name, rel.Kubernetes, platform, ErrUnpinned)
		}
	}
	return images.Binary{}, "", fmt.Errorf("images.lock names no %s for Kubernetes %s, so nothing pins it and %w", name, rel.Kubernetes, ErrUnpinned)
}

// Holds tells whether path is the file of sha256 want, and its size.
func Holds(path, want string) (int64, bool) {
	file, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer file.Close()
	h := sha256.New()
	n, err := io.Copy(h, file)
	return n, err == nil && hex.EncodeToString(h.Sum(nil)) == want
}

// try downloads from one mirror, retrying what is temporary, and marks the
// mirror down when it cannot be reached at all.
func (f *Fetcher) try(ctx context.Context, ev BinaryEvent, want, dst string) (int64, error) {
	var class mirror.Class
	var size int64
	op := func() (struct{}, error) {
		var err error
		size, err = f.download(ctx, ev, want, dst)
		if err == nil {
			return struct{}{}, nil
		}
		var local *localError
		if class = classify(err); class != mirror.Temporary || ctx.Err() != nil || errors.As(err, &local) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	tries := f.Tries
	if tries == 0 {
		tries = 3
	}
	_, err := backoff.Retry(ctx, op, backoff.WithMaxTries(tries), backoff.WithBackOff(f.backOff()),
		backoff.WithNotify(func(err error, d time.Duration) {
			ev.Phase, ev.Err, ev.Wait = BinaryRetry, err, d
			f.emit(ev)
		}))
	if re := backoff.AsRetryError(err); re != nil && re.LastErr != nil {
		err = re.LastErr
	}
	if class == mirror.Unreachable {
		f.markDown(ev.Mirror)
	}
	return size, err
}

// download fetches ev.URL into a file beside dst, hashing it on the way,
// and puts it in place when its sum is want. A mirror that stops sending
// mid-file (common across the firewall) would hold it for ever: no byte for
// the stall timeout ends it, as a temporary failure.
func (f *Fetcher) download(ctx context.Context, ev BinaryEvent, want, dst string) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := fmt.Errorf("%s stalled: no byte for %s", ev.URL, f.stallTimeout())
	watchdog := time.AfterFunc(f.stallTimeout(), func() { cancel(stall) })
	defer watchdog.Stop()
	n, err := f.get(ctx, ev, want, dst, func() { watchdog.Reset(f.stallTimeout()) })
	if err != nil && context.Cause(ctx) == stall {
		return n, fmt.Errorf("%w after %d bytes", stall, n)
	}
	return n, err
}

// get is download's request, calling progress as bytes come.
func (f *Fetcher) get(ctx context.Context, ev BinaryEvent, want, dst string, progress func()) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ev.URL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, &StatusError{URL: ev.URL, Code: resp.StatusCode, Status: resp.Status}
	}
	ev.Phase, ev.Total = BinaryFetching, resp.ContentLength
	f.emit(ev)
	file, err := atomicfile.Create(dst, 0o755)
	if err != nil {
		return 0, &localError{dst, err}
	}
	defer file.Discard()
	h := sha256.New()
	count := &counter{total: resp.ContentLength, progress: progress,
		report: func(n int64) { ev.Phase, ev.Current = BinaryBytes, n; f.emit(ev) }}
	n, err := io.Copy(io.MultiWriter(localWriter{file, dst}, h, count), io.LimitReader(resp.Body, maxBinary+1))
	var local *localError
	switch {
	case errors.As(err, &local):
		return n, local
	case err != nil:
		return n, fmt.Errorf("reading %s after %d bytes: %w", ev.URL, n, err)
	case n > maxBinary:
		return n, fmt.Errorf("%s is larger than %d MiB: not a %s", ev.URL, maxBinary>>20, ev.Name)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return n, &ChecksumError{Name: ev.Name, Mirror: ev.Mirror, URL: ev.URL, Got: got, Want: want}
	}
	if err := file.Commit(); err != nil {
		return n, &localError{dst, err}
	}
	return n, nil
}

// localError is a failure to write the file on this host, not the
// mirror's doing: no other mirror or retry mends it.
type localError struct {
	path string
	err  error
}

func (e *localError) Error() string {
	return fmt.Sprintf("writing %s on this host: %v", e.path, e.err)
}

func (e *localError) Unwrap() error { return e.err }

// localWriter marks its writer's errors as this host's.
type localWriter struct {
	w    io.Writer
	path string
}

func (w localWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		err = &localError{w.path, err}
	}
	return n, err
}

// classify sorts a download's failure: a server that answered "no" or
// served the wrong bytes is passed over at once, one that failed on the way
// is tried again, and one that cannot be reached is passed over for the
// rest of the run.
func classify(err error) mirror.Class {
	var se *StatusError
	var ce *ChecksumError
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &ce):
		return mirror.Permanent
	case errors.As(err, &se):
		if se.Code >= 500 || se.Code == http.StatusTooManyRequests || se.Code == http.StatusRequestTimeout {
			return mirror.Temporary
		}
		return mirror.Permanent
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &dns) && !dns.IsTemporary,
		// No answer to the connection at all: behind the firewall an
		// address is more often dropped than refused, and trying it again
		// costs the dial timeout (30s) each time, for every file.
		errors.As(err, &op) && op.Op == "dial" && op.Timeout():
		return mirror.Unreachable
	}
	return mirror.Temporary
}

func (f *Fetcher) platform() string {
	if f.Platform != "" {
		return f.Platform
	}
	return runtime.GOOS + "/" + runtime.GOARCH
}

func (f *Fetcher) emit(ev BinaryEvent) {
	if f.Events != nil {
		f.Events(ev)
	}
}

func (f *Fetcher) client() *http.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 30 * time.Second
		f.Client = &http.Client{Transport: t}
	}
	return f.Client
}

func (f *Fetcher) stallTimeout() time.Duration {
	if f.StallTimeout > 0 {
		return f.StallTimeout
	}
	return time.Minute
}

func (f *Fetcher) backOff() backoff.BackOff {
	if f.NewBackOff != nil {
		return f.NewBackOff()
	}
	return mirror.DefaultBackOff()
}

func (f *Fetcher) isDown(m mirror.BinaryMirror) bool { return f.down.Has(m.Name) }

func (f *Fetcher) markDown(name string) { f.down.Mark(name) }

// counter reports the bytes written through it, every 4 MiB and at the end,
// and tells progress of every write.
type counter struct {
	n, last, total int64
	report         func(int64)
	progress       func()
}

func (c *counter) Write(p []byte) (int, error) {
	c.progress()
	c.n += int64(len(p))
	if c.n-c.last >= 4<<20 || c.n == c.total {
		c.last = c.n
		c.report(c.n)
	}
	return len(p), nil
}

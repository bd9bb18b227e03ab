package host

import (
	"fmt"
	"strings"
	"time"
)

// BinaryPhase is a step in fetching one host binary.
type BinaryPhase string

// The phases Fetch reports.
const (
	// BinaryPresent: the destination holds the pinned file already.
	BinaryPresent BinaryPhase = "present"
	// BinaryFetching: a mirror answered; Total is the file's size, or -1.
	BinaryFetching BinaryPhase = "fetching"
	// BinaryBytes: Current bytes of Total have arrived.
	BinaryBytes BinaryPhase = "bytes"
	// BinaryRetry: the mirror failed with Err, tried again after Wait.
	BinaryRetry BinaryPhase = "retry"
	// BinaryFallback: the mirror failed with Err; the next one is tried.
	BinaryFallback BinaryPhase = "fallback"
	// BinaryDone: the file matched its pin and is in place.
	BinaryDone BinaryPhase = "done"
)

// BinaryEvent is progress Fetch reports, as data for a caller to render.
type BinaryEvent struct {
	Name, Version, Platform string
	Mirror, URL             string
	Phase                   BinaryPhase
	Current, Total          int64
	Err                     error
	Wait                    time.Duration
	// Next is the mirror tried after a BinaryFallback, "" for none.
	Next string
}

// String says what happened in a line, for a log or a terminal that is
// not one.
func (e BinaryEvent) String() string {
	what := e.Name + " " + e.Version
	switch e.Phase {
	case BinaryPresent:
		return fmt.Sprintf("%s: already in place (%s), sha256 verified", what, Size(e.Total))
	case BinaryFetching:
		return fmt.Sprintf("%s: downloading %s from %s", what, Size(e.Total), e.Mirror)
	case BinaryBytes:
		return fmt.Sprintf("%s: %s of %s from %s", what, Size(e.Current), Size(e.Total), e.Mirror)
	case BinaryRetry:
		return fmt.Sprintf("%s from %s: %v; trying again in %s", what, e.Mirror, e.Err, e.Wait.Round(100*time.Millisecond))
	case BinaryFallback:
		if e.Next == "" {
			return fmt.Sprintf("%s from %s: %v; no binary mirror left", what, e.Mirror, e.Err)
		}
		return fmt.Sprintf("%s from %s: %v; trying %s next", what, e.Mirror, e.Err, e.Next)
	case BinaryDone:
		return fmt.Sprintf("%s: %s from %s, sha256 verified", what, Size(e.Total), e.Mirror)
	}
	return what + ": " + string(e.Phase)
}

// Size is n bytes for humans: "91.9 MB", or "unknown size" for -1.
func Size(n int64) string {
	switch {
	case n < 0:
		return "unknown size"
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1000/1000)
}

// StatusError is a mirror's answer other than 200 OK.
type StatusError struct {
	URL    string
	Code   int
	Status string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %s at %s", e.Status, e.URL)
}

// ChecksumError is a file that is not the one images.lock pins.
type ChecksumError struct {
	Name, Mirror, URL string
	Got, Want         string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch: %s has sha256 %s, but images.lock pins %s: refusing it, as this mirror serves other bytes than dl.k8s.io",
		e.URL, e.Got, e.Want)
}

// BinaryTried is one mirror's failed attempt at a file.
type BinaryTried struct {
	Mirror, URL string
	Err         error
}

// FetchError says that no mirror served a good copy of a binary, and what
// each did.
type FetchError struct {
	Name, Version, Platform string
	Tried                   []BinaryTried
}

func (e *FetchError) Error() string {
	var parts []string
	for _, t := range e.Tried {
		parts = append(parts, fmt.Sprintf("%s: %v", t.Mirror, t.Err))
	}
	return fmt.Sprintf("no binary mirror served %s %s for %s as images.lock pins it (%s); %s", e.Name, e.Version, e.Platform, strings.Join(parts, "; "), FetchHint)
}

// FetchHint says what to do when no binary mirror served a file.
const FetchHint = "name a mirror that has the file with --binary-mirror (a catalogue name, or the base URL of a server of your own)"

// Unwrap exposes each mirror's error to errors.Is and errors.As.
func (e *FetchError) Unwrap() []error {
	var errs []error
	for _, t := range e.Tried {
		errs = append(errs, t.Err)
	}
	return errs
}

package containers

import (
	"errors"
	"fmt"
	"testing"
)

func TestSpecHash(t *testing.T) {
	a := Spec{Name: "dk8s-etcd", Image: "registry.k8s.io/etcd:3.7.0-0", Args: []string{"--a=1"}, Labels: map[string]string{LabelComponent: "etcd"}}
	b := a.WithHash()
	if b.Labels[LabelSpecHash] != a.Hash() || b.Hash() != a.Hash() {
		t.Error("the hash label must not change the hash")
	}
	if _, ok := a.Labels[LabelSpecHash]; ok {
		t.Error("WithHash changed its receiver's labels")
	}
	c := a
	c.Args = []string{"--a=2"}
	if c.Hash() == a.Hash() {
		t.Error("a changed flag must change the hash")
	}
}

func TestFlagsAreSorted(t *testing.T) {
	got := fmt.Sprint(Flags(map[string]string{"b": "2", "a": "1", "c": "x=y"}))
	if got != "[--a=1 --b=2 --c=x=y]" {
		t.Errorf("got %s", got)
	}
}

// The daemon's own words, as seen from Docker 20.10 on this project's test
// machine.
func TestClassify(t *testing.T) {
	refused := errors.New(`Error response from daemon: Get "http://127.0.0.1:5009/v2/": dial tcp 127.0.0.1:5009: connect: connection refused`)
	nxdomain := errors.New(`Error response from daemon: Get "https://nosuchhost.invalid/v2/": dial tcp: lookup nosuchhost.invalid: no such host`)
	missing := notFound{errors.New("manifest for x:2 not found: manifest unknown: manifest unknown")}
	denied := errors.New("Error response from daemon: pull access denied for x, repository does not exist or may require 'docker login'")
	noLogin := errors.New(`Error response from daemon: Head "http://127.0.0.1:34487/v2/google_containers/pause/manifests/3.10.2": no basic auth credentials`)
	reset := errors.New("read tcp 127.0.0.1:1->127.0.0.1:5001: read: connection reset by peer")
	for _, c := range []struct {
		err                           error
		unreachable, notFound, denied bool
		temporary                     bool
	}{
		{refused, true, false, false, true},
		{nxdomain, true, false, false, true},
		{missing, false, true, false, false},
		{denied, false, false, true, false},
		{noLogin, false, false, true, false},
		{reset, false, false, false, true},
	} {
		if IsUnreachable(c.err) != c.unreachable || IsNotFound(c.err) != c.notFound || IsDenied(c.err) != c.denied || IsTemporary(c.err) != c.temporary {
			t.Errorf("%v: unreachable %v notFound %v denied %v temporary %v", c.err, IsUnreachable(c.err), IsNotFound(c.err), IsDenied(c.err), IsTemporary(c.err))
		}
	}
}

func TestParsePlatform(t *testing.T) {
	if p, err := ParsePlatform("linux/arm64/v8"); err != nil || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("got %+v, %v", p, err)
	}
	for _, bad := range []string{"amd64", "linux/", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("%q should be refused", bad)
		}
	}
}

package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRenewKeepsCAsAndKeys(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	later := time.Now().Add(300 * 24 * time.Hour)
	renewed, err := p.Renew(specs, later)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(renewed, []string{"server", "admin", "etcd/client"}) {
		t.Errorf("renewed %v, want every certificate but the CAs", renewed)
	}
	after := snapshot(t, dir)
	for _, spec := range specs {
		key := filepath.FromSlash(spec.Name) + ".key"
		if !bytes.Equal(before[key], after[key]) {
			t.Errorf("renewal changed the key of %s", spec.Name)
		}
		crt := filepath.FromSlash(spec.Name) + ".crt"
		if spec.IsCA() != bytes.Equal(before[crt], after[crt]) {
			t.Errorf("%s: a renewal should replace exactly the non-CA certificates", spec.Name)
		}
	}
	exp, err := p.Expiries(specs)
	if err != nil {
		t.Fatal(err)
	}
	if leaf := exp[0]; leaf.CA || leaf.NotAfter.Before(later.Add(364*24*time.Hour)) {
		t.Errorf("soonest expiry after renewal: %+v", leaf)
	}
	for i := 1; i < len(exp); i++ {
		if exp[i].NotAfter.Before(exp[i-1].NotAfter) {
			t.Errorf("expiries not soonest first: %+v", exp)
		}
	}
	if last := exp[len(exp)-1]; !last.CA {
		t.Errorf("a CA (ten years) should expire last: %+v", last)
	}
}

func TestRenewAndExpiriesFail(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.Path("etcd/ca", ".key")); err != nil {
		t.Fatal(err)
	}
	renewed, err := p.Renew(specs, time.Now())
	if err == nil || !strings.Contains(err.Error(), "renewing etcd/client") {
		t.Errorf("renewing without etcd's CA key: %v", err)
	}
	if !slices.Equal(renewed, []string{"server", "admin"}) {
		t.Errorf("renewed %v before the failure, want [server admin]", renewed)
	}
	empty := &PKI{Dir: t.TempDir()}
	if _, err := empty.Expiries(specs); err == nil {
		t.Error("expiries of an empty PKI")
	}
}

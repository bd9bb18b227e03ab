package bootstrap

import (
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestNoAdmin: 'dk8s kubectl' without sudo cannot read the 0700 cluster
// directory; it must say so, not that there is no cluster.
func TestNoAdmin(t *testing.T) {
	const dir, admin = "/var/lib/dk8s", "/var/lib/dk8s/admin.conf"
	stat := func(errno syscall.Errno) error { return &fs.PathError{Op: "stat", Path: admin, Err: errno} }
	worker := &Settings{Role: RoleWorker, Server: "https://192.0.2.10:6443"}
	for _, tc := range []struct {
		err      error
		settings *Settings
		want     string
	}{
		{stat(syscall.EACCES), nil, "run 'sudo dk8s kubectl ...'"},
		{stat(syscall.EACCES), worker, "run 'sudo dk8s kubectl ...'"},
		{stat(syscall.ENOENT), nil, "no cluster in /var/lib/dk8s (it has no admin.conf)"},
		{stat(syscall.ENOENT), worker, "holds a worker joined to https://192.0.2.10:6443"},
		{stat(syscall.EIO), nil, "cannot read /var/lib/dk8s/admin.conf"},
	} {
		got := noAdmin(dir, admin, tc.settings, tc.err)
		if !strings.Contains(got.Error(), tc.want) {
			t.Errorf("noAdmin(%v, %v) = %q, want it to say %q", tc.err, tc.settings != nil, got, tc.want)
		}
	}
}

package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A crash cannot be simulated here; what can be seen is that the content
// and mode are right and that no temporary file is left behind.

func TestWriteMakesTheFileAndItsDirectory(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "pki", "etcd", "ca.key")
	if err := Write(path, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "secret", 0o600)
	for _, dir := range []string{filepath.Join(base, "pki"), filepath.Join(base, "pki", "etcd")} {
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o700 {
			t.Errorf("%s is %v, want 0700: it may hold keys", dir, info.Mode().Perm())
		}
	}
	assertOnly(t, filepath.Join(base, "pki", "etcd"), "ca.key")
}

func TestWriteReplacesContentAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.conf")
	if err := os.WriteFile(path, []byte("an older, longer content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "new", 0o600)
	if err := Write(path, []byte("new"), 0o755); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "new", 0o755)
	assertOnly(t, dir, "admin.conf")
}

func TestWriteFailsAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// A directory cannot be replaced by a file: the rename fails, and the
	// temporary file must go with it.
	target := filepath.Join(dir, "taken")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("x"), 0o644); err == nil {
		t.Fatal("replacing a directory by a file succeeded")
	}
	assertOnly(t, dir, "taken")

	// A file where the directory should be: nothing can be made.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(file, "below"), []byte("x"), 0o644); err == nil {
		t.Fatal("writing below a file succeeded")
	}
}

func TestWriteIfChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	changed, err := WriteIfChanged(path, []byte("a: 1\n"), 0o644)
	if err != nil || !changed {
		t.Fatalf("a new file: changed=%v, %v", changed, err)
	}
	assertFile(t, path, "a: 1\n", 0o644)

	// Unchanged: not rewritten, so its modification time stays.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	changed, err = WriteIfChanged(path, []byte("a: 1\n"), 0o644)
	if err != nil || changed {
		t.Fatalf("the same content: changed=%v, %v", changed, err)
	}
	if info, _ := os.Stat(path); !info.ModTime().Equal(old) {
		t.Errorf("an unchanged file was rewritten: modified %v, want %v", info.ModTime(), old)
	}

	// Unchanged content but another mode: the mode is fixed, the file is
	// not rewritten.
	changed, err = WriteIfChanged(path, []byte("a: 1\n"), 0o600)
	if err != nil || changed {
		t.Fatalf("the same content, another mode: changed=%v, %v", changed, err)
	}
	assertFile(t, path, "a: 1\n", 0o600)
	if info, _ := os.Stat(path); !info.ModTime().Equal(old) {
		t.Errorf("fixing the mode rewrote the file: modified %v, want %v", info.ModTime(), old)
	}

	changed, err = WriteIfChanged(path, []byte("a: 2\n"), 0o600)
	if err != nil || !changed {
		t.Fatalf("new content: changed=%v, %v", changed, err)
	}
	assertFile(t, path, "a: 2\n", 0o600)
	assertOnly(t, dir, "config.yaml")
}

func TestWriteIfChangedFails(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := WriteIfChanged(filepath.Join(file, "below"), []byte("x"), 0o644); err == nil || changed {
		t.Errorf("writing below a file: changed=%v, %v; want an error and no change", changed, err)
	}
}

func assertFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != content {
		t.Errorf("%s holds %q, want %q", path, data, content)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != mode {
		t.Errorf("%s is %v, want %v", path, info.Mode().Perm(), mode)
	}
}

// assertOnly fails unless dir holds exactly the files named: no temporary
// file is left beside them.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if len(got) != len(names) {
		t.Fatalf("%s holds %v, want only %v", dir, got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("%s holds %v, want only %v", dir, got, names)
		}
	}
}

func TestPendingReplacesOnlyWhenCommitted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bin", "kubelet")
	if err := Write(path, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Create(path, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("bytes that did not verify"))
	p.Discard()
	assertFile(t, path, "old", 0o755)
	assertOnly(t, filepath.Join(dir, "bin"), "kubelet")

	p, err = Create(path, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Discard() // after a commit, a no-op
	p.Write([]byte("new"))
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "new", 0o755)
	assertOnly(t, filepath.Join(dir, "bin"), "kubelet")
}

package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) {
	// No test may write the user's kubeconfig, even with the command
	// broken: client-go took ~/.kube/config from HOME at start-up, so it is
	// pointed into a directory of the tests' own, and KUBECONFIG is unset.
	home, err := os.MkdirTemp("", "dk8s-app-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("HOME", home)
	os.Setenv("KUBECONFIG", "")
	clientcmd.RecommendedHomeFile = filepath.Join(home, ".kube", "config")
	code := m.Run()
	os.RemoveAll(home)
	os.Exit(code)
}

// run runs dk8s with args as main does, with no container engine, and
// returns what a user sees: the program's output, its messages, and the
// error main prints (any error exits non-zero).
func run(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	// No test here may reach a Docker daemon: a command that got past the
	// check under test fails to connect instead of acting on this machine.
	return runWith(t, func(context.Context) (engine, error) { return nil, errNoEngine }, stdin, args...)
}

// errNoEngine is what a command gets in run when it connects.
var errNoEngine = errors.New("unit tests reach no container engine")

func runWith(t *testing.T, newEngine engineFunc, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("DK8S_LOCK", "")
	t.Setenv("DK8S_MIRROR", "")
	t.Setenv("DK8S_BINARY_MIRROR", "")
	t.Setenv("DK8S_DIR", "")
	var out, errb bytes.Buffer
	err = execute(context.Background(), Streams{In: stdin, Out: &out, Err: &errb}, args, newEngine)
	return out.String(), errb.String(), err
}

func TestBadFlagsAndArgumentsAreRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"strat"}, "unknown command \"strat\" for \"dk8s\"\n\nDid you mean this?\n\tstart"},
		{[]string{"start", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"start", "now"}, `unknown command "now" for "dk8s start"`},
		{[]string{"ps", "-o", "bogus"}, `unknown output format "bogus": use one of table, json, yaml`},
		{[]string{"images", "-o", "wide"}, `unknown output format "wide": use one of table, json, name`},
		{[]string{"pull", "-o", "yaml"}, `unknown output format "yaml": use one of table, json`},
		{[]string{"pull", "--parallel", "-1"}, "--parallel must be 0 (all at once) or more, got -1"},
		{[]string{"pull", "--mirror", "aliyn"}, `unknown mirror "aliyn": use one of`},
		{[]string{"pull", "--mirror", ","}, "no mirror given"},
		{[]string{"pull", "--mirror", "auto:"}, "auto:: no mirror given"},
		{[]string{"start", "--mirror", "auto:aliyn"}, `unknown mirror "aliyn"`},
		{[]string{"mirrors", "-o", "yaml"}, `unknown output format "yaml": use one of table, json`},
		{[]string{"mirrors", "--mirror", "auto,aliyun"}, `unknown mirror "auto"`},
		{[]string{"pull", "--binary-mirror", "daocloud"}, `unknown binary mirror "daocloud": use one of kubekey-china, kubekey-china-v4, daocloud-files, upstream, or a base URL`},
		{[]string{"start", "--binary-mirror", "files.example.com"}, `unknown binary mirror "files.example.com"`},
		{[]string{"join", "https://192.0.2.1:6443", "--binary-mirror", "ftp://x"}, `unknown binary mirror "ftp://x"`},
		{[]string{"save"}, "--output is required"},
		{[]string{"load"}, "--input is required"},
		{[]string{"save", "-o", "a.tar", "--bundle", "b.tar"}, "--output and --bundle write different files: give one"},
		{[]string{"load", "-i", "a.tar", "--bundle", "b.tar"}, "--input and --bundle read different files: give one"},
		{[]string{"logs"}, "accepts 1 arg(s), received 0"},
		{[]string{"images", "lock"}, "--from is required"},
		{[]string{"version", "--lock", "/nonexistent/images.lock"}, "/nonexistent/images.lock"},
		{[]string{"images", "-o", "name", "--kubernetes-version", "v0.0.1"}, "kubernetes v0.0.1 is not in the image lock"},
		{[]string{"token", "list", "-o", "yaml"}, `unknown output format "yaml": use one of table, json, name`},
		{[]string{"token", "create", "--ttl", "-1h"}, "--ttl -1h0m0s is negative"},
		{[]string{"token", "delete"}, "requires at least 1 arg(s), only received 0"},
		{[]string{"token", "mint"}, `unknown command "mint" for "dk8s token"`},
		{[]string{"join", "https://192.0.2.10:6443", "--token", "abcdef.0123456789abcdef", "--control-plane"}, "--control-plane needs --certificate-key"},
		{[]string{"join", "https://192.0.2.10:6443", "--token", "abcdef.0123456789abcdef", "--certificate-key", "00"}, "--certificate-key is for a control plane"},
		{[]string{"reset", "--forse"}, "unknown flag: --forse"},
		{[]string{"token", "create", "--control-plane", "--ttl", "0"}, "--ttl 0 with --control-plane"},
	} {
		stdout, _, err := run(t, nil, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dk8s %s: error %v, want one saying %q", strings.Join(c.args, " "), err, c.want)
		}
		if stdout != "" {
			t.Errorf("dk8s %s printed output on a refusal: %q", strings.Join(c.args, " "), stdout)
		}
	}
}

func TestResetPurgeAsksFirst(t *testing.T) {
	// A directory that does not exist: if the refusal ever broke, reset
	// would meet no daemon (see run) and no data.
	dir := filepath.Join(t.TempDir(), "cluster")
	for _, c := range []struct {
		name  string
		stdin io.Reader
		want  string
	}{
		{"no standard input", nil, "--purge asks for confirmation: pass --yes to run without a terminal"},
		{"standard input at its end, as from /dev/null", strings.NewReader(""), "--purge needs a 'yes' on standard input, or --yes"},
		{"an answer other than yes", strings.NewReader("y\n"), "not purged: nothing was changed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := run(t, c.stdin, "reset", "--purge", "--dir", dir)
			if err == nil || err.Error() != c.want {
				t.Errorf("reset --purge: error %v, want %q", err, c.want)
			}
		})
	}
	_, stderr, _ := run(t, strings.NewReader("no\n"), "reset", "--purge", "--dir", dir)
	if !strings.Contains(stderr, "This deletes "+dir) || !strings.Contains(stderr, "Type 'yes' to go on") {
		t.Errorf("reset --purge should say what it deletes and ask; stderr: %q", stderr)
	}
}

func TestConfirm(t *testing.T) {
	for _, c := range []struct {
		stdin string
		want  bool
	}{
		{"yes\n", true},
		{"  yes \n", true},
		{"yes", true}, // no newline before the end of input
		{"y\n", false},
		{"YES\n", false},
		{"no\nyes\n", false}, // only the first line is the answer
		{"\n", false},
	} {
		var errb bytes.Buffer
		g := &globals{streams: Streams{In: strings.NewReader(c.stdin), Err: &errb}}
		got, err := confirm(g, "Type 'yes' to go on: ")
		if err != nil || got != c.want {
			t.Errorf("answer %q: got %v, %v; want %v", c.stdin, got, err, c.want)
		}
		if errb.String() != "Type 'yes' to go on: " {
			t.Errorf("answer %q: the prompt on stderr is %q", c.stdin, errb.String())
		}
	}
}

func TestHelpShowsExamples(t *testing.T) {
	for _, c := range []struct {
		cmd, example string
	}{
		{"images", "dk8s images -o name"},
		{"images lock", "dk8s images lock --from upstream"},
		{"pull", "dk8s pull --mirror aliyun,daocloud,upstream"},
		{"save", "dk8s save -o - | ssh airgapped dk8s load -i -"},
		{"load", "dk8s load -i k8s-images.tar"},
		{"start", "dk8s start --extra-args kube-apiserver:v=4"},
		{"ps", "dk8s ps -o json"},
		{"reset", "dk8s reset --purge --yes"},
		{"logs", "dk8s logs kube-apiserver --tail 50"},
		{"kubeconfig", "dk8s kubeconfig --merge"},
		{"mirrors", "dk8s mirrors --mirror auto:daocloud,harbor.local:8443/google_containers"},
	} {
		stdout, stderr, err := run(t, nil, append(strings.Fields(c.cmd), "--help")...)
		if err != nil {
			t.Errorf("dk8s %s --help: %v", c.cmd, err)
			continue
		}
		_, examples, ok := strings.Cut(stdout, "Examples:\n")
		if !ok || !strings.Contains(examples, c.example) {
			t.Errorf("dk8s %s --help should show the example %q under Examples:\n%s", c.cmd, c.example, stdout)
		}
		if stderr != "" {
			t.Errorf("dk8s %s --help wrote to stderr: %q", c.cmd, stderr)
		}
	}
	// The overview names the commands of an air-gapped install.
	stdout, _, err := run(t, nil, "--help")
	if err != nil || !strings.Contains(stdout, "dk8s pull --mirror aliyun,daocloud") || !strings.Contains(stdout, "dk8s save -o k8s.tar") {
		t.Errorf("dk8s --help: %v\n%s", err, stdout)
	}
}

func TestVersionAndImageNamesNeedNoDocker(t *testing.T) {
	stdout, _, err := run(t, nil, "version")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if err != nil || lines[0] != "dk8s "+Version || len(lines) < 2 || !strings.HasPrefix(lines[1], "kubernetes v1.") || !strings.HasSuffix(lines[1], " (default)") {
		t.Errorf("dk8s version: %v\n%s", err, stdout)
	}

	stdout, stderr, err := run(t, nil, "images", "-o", "name")
	if err != nil || stderr != "" {
		t.Fatalf("dk8s images -o name: %v\n%s", err, stderr)
	}
	names := strings.Split(strings.TrimSpace(stdout), "\n")
	for _, n := range names {
		if !(strings.HasPrefix(n, "registry.k8s.io/") || strings.HasPrefix(n, "docker.io/")) || !strings.Contains(n, ":") || strings.ContainsAny(n, " \t") {
			t.Errorf("dk8s images -o name printed %q, want one canonical name a line", n)
		}
	}
	for _, want := range []string{"/kube-apiserver:", "/etcd:", "/coredns/coredns:", "/pause:", "\ndocker.io/flannel/flannel:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dk8s images -o name lacks %s:\n%s", want, stdout)
		}
	}
}

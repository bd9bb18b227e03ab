package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/pki"
	"github.com/dk8s/dk8s/pkg/token"
)

// runKube runs dk8s with args as run does, the admin's connection to the
// cluster being cs.
func runKube(t *testing.T, cs kubernetes.Interface, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("DK8S_LOCK", "")
	var out, errb bytes.Buffer
	g := &globals{
		streams:   Streams{Out: &out, Err: &errb},
		newEngine: func(context.Context) (engine, error) { return nil, errNoEngine },
		newKube:   func(bootstrap.Config) (kubernetes.Interface, error) { return cs, nil },
	}
	root := newRoot(g)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// controlPlaneDir is a cluster directory as start leaves it on a control
// plane advertised at 192.0.2.10, with its CA's pin.
func controlPlaneDir(t *testing.T) (dir, caHash string) {
	t.Helper()
	dir = t.TempDir()
	marker := "apiVersion: dk8s.io/v1alpha1\nkind: Cluster\nname: dk8s\nnodeName: cp\nadvertiseAddress: 192.0.2.10\nserviceCIDR: 10.96.0.0/12\npodCIDR: 10.244.0.0/16\n"
	if err := os.WriteFile(filepath.Join(dir, bootstrap.MarkerFile), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _, err := pki.Ensure(filepath.Join(dir, "pki"), []pki.CertSpec{{Name: "ca", CommonName: "dk8s-ca"}})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := p.Cert("ca")
	if err != nil {
		t.Fatal(err)
	}
	return dir, token.CAHash(ca)
}

func TestTokenCreatePrintsTheTokenAlone(t *testing.T) {
	dir, _ := controlPlaneDir(t)
	cs := fake.NewClientset()
	stdout, stderr, err := runKube(t, cs, "token", "create", "--dir", dir, "--ttl", "2h", "--description", "rack 4")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`\A[a-z0-9]{6}\.[a-z0-9]{16}\n\z`).MatchString(stdout) || stderr != "" {
		t.Errorf("token create should print the token alone, for pipes: stdout %q, stderr %q", stdout, stderr)
	}
	toks, _ := token.List(context.Background(), cs)
	if len(toks) != 1 || toks[0].String() != strings.TrimSpace(stdout) || toks[0].Description != "rack 4" ||
		toks[0].Expires.Sub(time.Now()) < 119*time.Minute {
		t.Errorf("the cluster holds %+v after creating %s", toks, stdout)
	}
	if _, err := cs.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{}); err != nil {
		t.Errorf("token create did not publish cluster-info: %v", err)
	}
}

func TestTokenCreatePrintsBothJoinCommands(t *testing.T) {
	dir, caHash := controlPlaneDir(t)
	cs := fake.NewClientset()
	stdout, stderr, err := runKube(t, cs, "token", "create", "--dir", dir, "--print-join-command", "--agent-image", "registry.example/dk8s:v9")
	if err != nil {
		t.Fatal(err)
	}
	toks, _ := token.List(context.Background(), cs)
	if len(toks) != 1 {
		t.Fatalf("tokens made: %+v", toks)
	}
	tok := toks[0].String()
	want := "dk8s join https://192.0.2.10:6443 --token " + tok + " --ca-cert-hash " + caHash + "\n" +
		"dk8s agent image registry.example/dk8s:v9 >/dev/null && docker run -d --name dk8s-agent --restart=always --net=host --pid=host -v /var/run/docker.sock:/var/run/docker.sock -v /var/lib/dk8s:/var/lib/dk8s " +
		"-e DK8S_TOKEN=" + tok + " registry.example/dk8s:v9 agent --server https://192.0.2.10:6443 --ca-cert-hash " + caHash + "\n"
	if stdout != want {
		t.Errorf("token create --print-join-command printed\n%s\nwant\n%s", stdout, want)
	}
	if !strings.Contains(stderr, "Run one of these on the worker") || strings.Contains(stderr, tok) {
		t.Errorf("stderr should say what the commands are for, and hold no token: %q", stderr)
	}
}

func TestTokenCreateWarnsOfATokenThatNeverExpires(t *testing.T) {
	dir, _ := controlPlaneDir(t)
	cs := fake.NewClientset()
	stdout, stderr, err := runKube(t, cs, "token", "create", "--dir", dir, "--ttl", "0")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(stdout)[:6]
	if want := "warning: token " + id + " never expires: anyone who holds it can join nodes until 'dk8s token delete " + id + "'\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if toks, _ := token.List(context.Background(), cs); len(toks) != 1 || !toks[0].Expires.IsZero() {
		t.Errorf("--ttl 0 made %+v", toks)
	}
}

func TestDefaultAgentImageIsThisDK8s(t *testing.T) {
	if got := defaultAgentImage(&globals{version: "v1.37.2"}); got != "docker.io/dk8s/dk8s:"+Version {
		t.Errorf("defaultAgentImage = %s, want dk8s's own version %s whatever --kubernetes-version says", got, Version)
	}
}

func tokenSecret(id, expiration, description string) *corev1.Secret {
	data := map[string][]byte{"token-id": []byte(id), "token-secret": []byte("0123456789abcdef"),
		"usage-bootstrap-authentication": []byte("true"), "usage-bootstrap-signing": []byte("true"), "description": []byte(description)}
	if expiration != "" {
		data["expiration"] = []byte(expiration)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"}, Type: "bootstrap.kubernetes.io/token", Data: data}
}

func TestTokenListTable(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	toks := []token.Token{
		{ID: "expird", Secret: "0123456789abcdef", Expires: now.Add(-time.Minute), Usages: []string{"authentication", "signing"}},
		{ID: "soon01", Secret: "0123456789abcdef", Expires: now.Add(90 * time.Second), Usages: []string{"authentication", "signing"}, Description: "rack 4"},
		{ID: "hour01", Secret: "0123456789abcdef", Expires: now.Add(23*time.Hour + 59*time.Minute), Usages: []string{"signing"}},
		{ID: "week01", Secret: "0123456789abcdef", Expires: now.Add(7 * 24 * time.Hour), Usages: []string{"authentication", "signing"}},
		{ID: "never1", Secret: "0123456789abcdef", Usages: []string{"authentication", "signing"}},
	}
	var out bytes.Buffer
	if err := printTokens(&out, "table", toks, now); err != nil {
		t.Fatal(err)
	}
	want := `TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION
expird.0123456789abcdef   <expired>   2026-05-01T11:59:00Z   authentication,signing   -
soon01.0123456789abcdef   90s         2026-05-01T12:01:30Z   authentication,signing   rack 4
hour01.0123456789abcdef   23h         2026-05-02T11:59:00Z   signing                  -
week01.0123456789abcdef   7d          2026-05-08T12:00:00Z   authentication,signing   -
never1.0123456789abcdef   <forever>   <never>                authentication,signing   -
`
	if out.String() != want {
		t.Errorf("token list printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestTokenListOutputs(t *testing.T) {
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	cs := fake.NewClientset(tokenSecret("abcdef", later, "rack 4"), tokenSecret("ghijkl", "2020-01-01T00:00:00Z", ""))

	stdout, _, err := runKube(t, cs, "token", "list", "-o", "name")
	if want := "ghijkl.0123456789abcdef\nabcdef.0123456789abcdef\n"; err != nil || stdout != want {
		t.Errorf("token list -o name: %q, %v; want %q", stdout, err, want)
	}
	stdout, _, err = runKube(t, cs, "token", "list", "-o", "json")
	var got []map[string]any
	if err != nil || json.Unmarshal([]byte(stdout), &got) != nil || len(got) != 2 {
		t.Fatalf("token list -o json: %v\n%s", err, stdout)
	}
	if got[0]["id"] != "ghijkl" || got[0]["expired"] != true || got[1]["expired"] != false || got[1]["description"] != "rack 4" || got[1]["secret"] != "0123456789abcdef" {
		t.Errorf("token list -o json:\n%s", stdout)
	}
	stdout, stderr, err := runKube(t, fake.NewClientset(), "token", "list")
	if err != nil || stdout != "TOKEN   TTL   EXPIRES   USAGES   DESCRIPTION\n" || !strings.Contains(stderr, "'dk8s token create'") {
		t.Errorf("token list of no token: %q, %q, %v", stdout, stderr, err)
	}
	if stdout, _, _ := runKube(t, fake.NewClientset(), "token", "list", "-o", "json"); stdout != "[]\n" {
		t.Errorf("token list -o json of no token: %q, want []", stdout)
	}
}

func TestTokenDelete(t *testing.T) {
	cs := fake.NewClientset(tokenSecret("abcdef", "", ""), tokenSecret("ghijkl", "", ""))
	_, stderr, err := runKube(t, cs, "token", "delete", "abcdef", "mnopqr", "ghijkl.0123456789abcdef")
	if err == nil || err.Error() != "there is no token mnopqr (it may have expired and been cleaned up): see 'dk8s token list'" {
		t.Errorf("token delete of a missing token: %v", err)
	}
	if stderr != "deleted token abcdef\ndeleted token ghijkl\n" {
		t.Errorf("token delete should name what it deleted, every other token being tried, and echo no secret: %q", stderr)
	}
	if toks, _ := token.List(context.Background(), cs); len(toks) != 0 {
		t.Errorf("tokens left: %+v", toks)
	}
}

func TestTokenCommandsOffAControlPlane(t *testing.T) {
	dir := t.TempDir()
	want := filepath.Join(dir, "admin.conf") + " does not exist: run this on a control plane, or make this host one with 'dk8s start'"
	for _, args := range [][]string{{"token", "create"}, {"token", "list"}, {"token", "delete", "abcdef"}} {
		stdout, _, err := run(t, nil, append(args, "--dir", dir)...)
		if err == nil || !strings.Contains(err.Error(), want) || stdout != "" {
			t.Errorf("dk8s %s without a cluster: %v, want %q", strings.Join(args, " "), err, want)
		}
	}
}

// Secrets stay off what others can read: --help shows no $DK8S_TOKEN or
// $DK8S_CERTIFICATE_KEY as a default, and a malformed token is not echoed.
func TestJoinKeepsSecretsOffDisplay(t *testing.T) {
	t.Setenv("DK8S_TOKEN", "zyxwvu.s3cr3t5ecretvalu")
	t.Setenv("DK8S_CERTIFICATE_KEY", "5ec7e7c0ffee")
	for _, cmd := range [][]string{{"join", "--help"}, {"agent", "--help"}} {
		stdout, stderr, err := run(t, nil, cmd...)
		if err != nil || strings.Contains(stdout+stderr, "s3cr3t5ecretvalu") || strings.Contains(stdout+stderr, "5ec7e7c0ffee") {
			t.Errorf("dk8s %s shows a secret of the environment (%v):\n%s%s", strings.Join(cmd, " "), err, stdout, stderr)
		}
	}
	t.Setenv("DK8S_CERTIFICATE_KEY", "")
	_, stderr, err := run(t, nil, "join", "https://192.0.2.10:6443", "--token", "abcdef.S3CRETVALUE12345", "--ca-cert-hash", "sha256:"+strings.Repeat("0", 64), "--dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error()+stderr, "is not a join token") || strings.Contains(err.Error()+stderr, "S3CRETVALUE") {
		t.Errorf("a malformed token should be refused without being echoed: %v\n%s", err, stderr)
	}
}

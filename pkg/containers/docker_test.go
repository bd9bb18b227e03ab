package containers

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// useDaemon points FromEnv at host, and at nothing else the environment
// running the tests may set.
func useDaemon(t *testing.T, host string) {
	t.Setenv("DOCKER_HOST", host)
	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
}

// versionRoutes answer /version and /info as Docker 20.10 does, with the
// storage driver given.
func versionRoutes(driver string, driverStatus [][2]string) map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /version": reply(200, map[string]any{"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"}),
		"GET /info": reply(200, map[string]any{"Driver": driver, "DriverStatus": driverStatus, "RegistryConfig": map[string]any{
			"InsecureRegistryCIDRs": []string{"127.0.0.0/8"},
			"IndexConfigs": map[string]any{
				"docker.io":       map[string]any{"Name": "docker.io", "Secure": true},
				"172.29.0.1:5001": map[string]any{"Name": "172.29.0.1:5001", "Secure": false},
			},
		}}),
	}
}

func TestFromEnvNegotiatesTheDaemonsVersion(t *testing.T) {
	f := newEngineAPI(t, versionRoutes("overlay2", [][2]string{{"Backing Filesystem", "extfs"}}))
	useDaemon(t, f.host)
	ctx := context.Background()
	d, err := FromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if f.pinged() == 0 || len(f.received()) != 0 {
		t.Errorf("FromEnv should ping the daemon and ask nothing else: %d pings, %v", f.pinged(), f.received())
	}
	v, err := d.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The registries it reaches over plain HTTP: the node's containerd
	// reaches them so too.
	want := Version{Server: "20.10.24", APIVersion: "1.41", OS: "linux", Arch: "amd64", Store: "classic", Insecure: []string{"127.0.0.0/8", "172.29.0.1:5001"}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %+v, want %+v", v, want)
	}
}

// A daemon newer than the client is spoken to in the client's own version.
func TestVersionAgainstANewerDaemon(t *testing.T) {
	f := newEngineAPI(t, versionRoutes("overlay2", nil))
	f.ping, f.api = "9.99", client.MaxAPIVersion
	v, err := f.dial().Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.APIVersion != client.MaxAPIVersion {
		t.Errorf("API version %s, want the client's %s", v.APIVersion, client.MaxAPIVersion)
	}
}

func TestVersionTellsTheImageStore(t *testing.T) {
	for _, c := range []struct {
		driver string
		status [][2]string
		want   string
	}{
		{"overlay2", [][2]string{{"Backing Filesystem", "extfs"}, {"Supports d_type", "true"}}, "classic"},
		{"devicemapper", nil, "classic"},
		// Docker 24+ with the containerd image store.
		{"overlayfs", [][2]string{{"driver-type", "io.containerd.snapshotter.v1"}}, "containerd"},
		{"stargz-snapshotter", nil, "containerd"},
	} {
		f := newEngineAPI(t, versionRoutes(c.driver, c.status))
		v, err := f.dial().Version(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if v.Store != c.want {
			t.Errorf("driver %s %v: store %q, want %q", c.driver, c.status, v.Store, c.want)
		}
	}
}

func TestVersionErrors(t *testing.T) {
	routes := versionRoutes("overlay2", nil)
	routes["GET /version"] = fail(500, "daemon is shutting down")
	_, err := newEngineAPI(t, routes).dial().Version(context.Background())
	if err == nil || !strings.Contains(err.Error(), "asking the Docker daemon its version") || !strings.Contains(err.Error(), "daemon is shutting down") {
		t.Errorf("got %v", err)
	}
	routes = versionRoutes("overlay2", nil)
	routes["GET /info"] = fail(500, "info is broken")
	_, err = newEngineAPI(t, routes).dial().Version(context.Background())
	if err == nil || !strings.Contains(err.Error(), "asking the Docker daemon for its info") || !strings.Contains(err.Error(), "info is broken") {
		t.Errorf("got %v", err)
	}
}

func TestFromEnvReportsADaemonItCannotUse(t *testing.T) {
	ctx := context.Background()

	// Nothing listens: the port of a listener just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := "tcp://" + l.Addr().String()
	l.Close()
	useDaemon(t, host)
	if d, err := FromEnv(ctx); err == nil {
		d.Close()
		t.Error("FromEnv succeeded with no daemon")
	} else {
		if !strings.Contains(err.Error(), "cannot reach the Docker daemon at "+host) || !strings.Contains(err.Error(), "is dockerd running") {
			t.Errorf("got %v", err)
		}
		if !client.IsErrConnectionFailed(err) {
			t.Errorf("%v should keep the client's connection error", err)
		}
	}

	// A daemon too old for this client.
	f := newEngineAPI(t, nil)
	f.ping = "1.24"
	useDaemon(t, f.host)
	if d, err := FromEnv(ctx); err == nil {
		d.Close()
		t.Error("FromEnv accepted API version 1.24")
	} else if !strings.Contains(err.Error(), "cannot reach the Docker daemon") || !strings.Contains(err.Error(), "1.24 is not supported") {
		t.Errorf("got %v", err)
	}

	// DOCKER_HOST that is no address.
	useDaemon(t, "not-an-address")
	if _, err := FromEnv(ctx); err == nil || !strings.Contains(err.Error(), "configuring the Docker client (check DOCKER_HOST)") {
		t.Errorf("got %v", err)
	}
}

func TestPullImageReportsProgress(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"POST /images/create": jsonStream(
			`{"status":"Pulling from pause","id":"3.10"}`,
			`{"status":"Pulling fs layer","progressDetail":{},"id":"61fec91190a0"}`,
			`{"status":"Downloading","progressDetail":{"current":32768,"total":320368},"progress":"[====>   ]","id":"61fec91190a0"}`,
			`{"status":"Download complete","progressDetail":{},"id":"61fec91190a0"}`,
			`{"status":"Pull complete","progressDetail":{},"id":"61fec91190a0"}`,
			`{"status":"Digest: sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a"}`,
			`{"status":"Status: Downloaded newer image for registry.k8s.io/pause:3.10"}`,
		),
	})
	var got []LayerProgress
	err := f.dial().PullImage(context.Background(), "registry.k8s.io/pause:3.10", PullOptions{
		Platform: "linux/arm64/v8",
		Auth:     "eyJ1c2VybmFtZSI6InUifQ==",
		Progress: func(p LayerProgress) { got = append(got, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []LayerProgress{
		{Layer: "3.10", Status: "Pulling from pause"},
		{Layer: "61fec91190a0", Status: "Pulling fs layer"},
		{Layer: "61fec91190a0", Status: "Downloading", Current: 32768, Total: 320368},
		{Layer: "61fec91190a0", Status: "Download complete"},
		{Layer: "61fec91190a0", Status: "Pull complete"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("progress:\n got %+v\nwant %+v", got, want)
	}
	r := f.last("POST /images/create")
	if q := r.Query; q.Get("fromImage") != "registry.k8s.io/pause" || q.Get("tag") != "3.10" || q.Get("platform") != "linux/arm64/v8" {
		t.Errorf("query %v", q)
	}
	if a := r.Header.Get("X-Registry-Auth"); a != "eyJ1c2VybmFtZSI6InUifQ==" {
		t.Errorf("X-Registry-Auth %q", a)
	}
}

func TestPullImageByDigestForTheDaemonsPlatform(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"POST /images/create": jsonStream(`{"status":"Downloading","progressDetail":{"current":1,"total":2},"id":"abc"}`),
	})
	const digest = "sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a"
	// Without a Progress callback, progress is read and dropped.
	if err := f.dial().PullImage(context.Background(), "127.0.0.1:5000/pause@"+digest, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	r := f.last("POST /images/create")
	if q := r.Query; q.Get("fromImage") != "127.0.0.1:5000/pause" || q.Get("tag") != digest || q.Has("platform") {
		t.Errorf("query %v", q)
	}
	if r.Header.Get("X-Registry-Auth") != "" {
		t.Error("an anonymous pull sent credentials")
	}
}

func TestPullImageRefusesABadPlatform(t *testing.T) {
	f := newEngineAPI(t, nil)
	err := f.dial().PullImage(context.Background(), "pause:3.10", PullOptions{Platform: "arm64"})
	if err == nil || !strings.Contains(err.Error(), "OS/ARCH") {
		t.Errorf("got %v", err)
	}
	if r := f.received(); len(r) != 0 {
		t.Errorf("the daemon was asked %v", r)
	}
}

// How a failed pull is classified, from the daemon's answers: an error
// status before the pull starts, or an error message in its stream.
func TestPullImageErrorsAreClassified(t *testing.T) {
	for _, c := range []struct {
		name                          string
		answer                        http.HandlerFunc
		notFound, denied, unreachable bool
		temporary                     bool
	}{
		{"no such tag", fail(404, "manifest for 127.0.0.1:5000/pause:9 not found: manifest unknown: manifest unknown"), true, false, false, false},
		// Docker Hub answers so for a repository that does not exist.
		{"no such repository", fail(404, "pull access denied for nosuch, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"), true, true, false, false},
		{"credentials refused", fail(401, "Head \"https://r.example/v2/x/manifests/1\": no basic auth credentials"), false, true, false, false},
		{"forbidden", fail(403, "the registry forbids it"), false, true, false, false},
		{"registry down", fail(500, `Get "https://127.0.0.1:5009/v2/": dial tcp 127.0.0.1:5009: connect: connection refused`), false, false, true, true},
		{"registry unknown", fail(500, `Get "https://nosuchhost.invalid/v2/": dial tcp: lookup nosuchhost.invalid: no such host`), false, false, true, true},
		{"rate limited", fail(429, "toomanyrequests: You have reached your pull rate limit"), false, false, false, true},
		{"in the stream: missing", jsonStream(
			`{"status":"Pulling from pause","id":"9"}`,
			`{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}`,
		), true, false, false, false},
		{"in the stream: denied", jsonStream(`{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}`), false, true, false, false},
		{"in the stream: reset", jsonStream(
			`{"status":"Downloading","progressDetail":{"current":1,"total":2},"id":"abc"}`,
			`{"errorDetail":{"message":"read tcp 127.0.0.1:1->127.0.0.1:5001: read: connection reset by peer"},"error":"read tcp 127.0.0.1:1->127.0.0.1:5001: read: connection reset by peer"}`,
		), false, false, false, true},
		{"in the stream: no such platform", jsonStream(`{"errorDetail":{"message":"no matching manifest for linux/s390x in the manifest list entries"},"error":"no matching manifest for linux/s390x in the manifest list entries"}`), false, false, false, false},
		{"a broken stream", jsonStream(`{"status":"Downloading","progressDetail":{"current":1,`), false, false, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newEngineAPI(t, map[string]http.HandlerFunc{"POST /images/create": c.answer})
			calls := 0
			err := f.dial().PullImage(context.Background(), "127.0.0.1:5000/pause:9", PullOptions{Progress: func(LayerProgress) { calls++ }})
			if err == nil {
				t.Fatal("the pull should fail")
			}
			if IsNotFound(err) != c.notFound || IsDenied(err) != c.denied || IsUnreachable(err) != c.unreachable || IsTemporary(err) != c.temporary {
				t.Errorf("%v: notFound %v denied %v unreachable %v temporary %v", err,
					IsNotFound(err), IsDenied(err), IsUnreachable(err), IsTemporary(err))
			}
		})
	}
}

// A pull the caller gives up is no error worth retrying, even when the
// daemon is still streaming.
func TestPullImageCanceled(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"POST /images/create": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":"Downloading","progressDetail":{"current":1,"total":2},"id":"abc"}`+"\r\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-done:
			}
		},
	})
	d := f.dial()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan error, 1)
	go func() {
		finished <- d.PullImage(ctx, "pause:3.10", PullOptions{Progress: func(LayerProgress) { cancel() }})
	}()
	select {
	case err := <-finished:
		if !errors.Is(err, context.Canceled) || IsTemporary(err) {
			t.Errorf("got %v (temporary %v), want context.Canceled", err, IsTemporary(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PullImage did not return when its context was canceled")
	}

	// Canceled before it starts.
	err := d.PullImage(ctx, "pause:3.10", PullOptions{})
	if !errors.Is(err, context.Canceled) || IsTemporary(err) {
		t.Errorf("got %v", err)
	}
}

func TestInspectImage(t *testing.T) {
	layers := []string{"sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:2222222222222222222222222222222222222222222222222222222222222222"}
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"GET /images/registry.k8s.io/pause:3.10/json": reply(200, map[string]any{
			"Id":           "sha256:873ed75102791e5b0b8a7fcd41606c92fcec98d56d05ead4ac5131650004c136",
			"RepoTags":     []string{"registry.k8s.io/pause:3.10"},
			"RepoDigests":  []string{"registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a"},
			"Os":           "linux",
			"Architecture": "arm",
			"Variant":      "v7",
			"RootFS":       map[string]any{"Type": "layers", "Layers": layers},
		}),
		"GET /images/etcd:3.7.0-0/json": reply(200, map[string]any{"Id": "sha256:2", "Os": "linux", "Architecture": "amd64"}),
		"GET /images/nosuch:1/json":     fail(404, "No such image: nosuch:1"),
	})
	d := f.dial()
	ctx := context.Background()
	img, err := d.InspectImage(ctx, "registry.k8s.io/pause:3.10")
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != "sha256:873ed75102791e5b0b8a7fcd41606c92fcec98d56d05ead4ac5131650004c136" ||
		!slices.Equal(img.RepoTags, []string{"registry.k8s.io/pause:3.10"}) ||
		len(img.RepoDigests) != 1 || !strings.HasPrefix(img.RepoDigests[0], "registry.k8s.io/pause@sha256:") ||
		img.Platform != "linux/arm/v7" || !slices.Equal(img.Layers, layers) {
		t.Errorf("got %+v", img)
	}

	img, err = d.InspectImage(ctx, "etcd:3.7.0-0")
	if err != nil {
		t.Fatal(err)
	}
	if img.Platform != "linux/amd64" || img.Layers != nil || img.RepoTags != nil {
		t.Errorf("got %+v", img)
	}

	_, err = d.InspectImage(ctx, "nosuch:1")
	if !IsNotFound(err) || !strings.Contains(err.Error(), "No such image: nosuch:1") || IsTemporary(err) {
		t.Errorf("got %v, want a not-found error in the daemon's words", err)
	}
}

func TestTagImage(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"POST /images/registry.k8s.io/pause:3.10/tag": status(201),
		"POST /images/nosuch:1/tag":                   fail(404, "No such image: nosuch:1"),
	})
	d := f.dial()
	ctx := context.Background()
	if err := d.TagImage(ctx, "registry.k8s.io/pause:3.10", "127.0.0.1:5000/pause:3.10"); err != nil {
		t.Fatal(err)
	}
	if q := f.last("POST /images/registry.k8s.io/pause:3.10/tag").Query; q.Get("repo") != "127.0.0.1:5000/pause" || q.Get("tag") != "3.10" {
		t.Errorf("query %v", q)
	}
	// No tag means latest, as docker tag has it.
	if err := d.TagImage(ctx, "registry.k8s.io/pause:3.10", "mirror/pause"); err != nil {
		t.Fatal(err)
	}
	if q := f.last("POST /images/registry.k8s.io/pause:3.10/tag").Query; q.Get("repo") != "docker.io/mirror/pause" || q.Get("tag") != "latest" {
		t.Errorf("query %v", q)
	}
	if err := d.TagImage(ctx, "nosuch:1", "x:1"); !IsNotFound(err) {
		t.Errorf("got %v, want not found", err)
	}
	n := len(f.received())
	if err := d.TagImage(ctx, "registry.k8s.io/pause:3.10", "Not/A:Valid:Name"); err == nil || IsNotFound(err) {
		t.Errorf("got %v, want a refused name", err)
	}
	if len(f.received()) != n {
		t.Error("an invalid name was sent to the daemon")
	}
}

func TestUntagImage(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"DELETE /images/127.0.0.1:5000/pause:3.10": reply(200, []map[string]string{{"Untagged": "127.0.0.1:5000/pause:3.10"}}),
		"DELETE /images/nosuch:1":                  fail(404, "No such image: nosuch:1"),
		"DELETE /images/busy:1":                    fail(409, "conflict: unable to remove repository reference \"busy:1\" (must force) - container 0123456789ab is using its referenced image 1a2b3c4d5e6f"),
	})
	d := f.dial()
	ctx := context.Background()
	if err := d.UntagImage(ctx, "127.0.0.1:5000/pause:3.10"); err != nil {
		t.Fatal(err)
	}
	q := f.last("DELETE /images/127.0.0.1:5000/pause:3.10").Query
	if q.Get("force") != "" || q.Get("noprune") != "1" {
		t.Errorf("query %v: an untag must neither force nor prune", q)
	}
	if err := d.UntagImage(ctx, "nosuch:1"); !IsNotFound(err) {
		t.Errorf("got %v, want not found", err)
	}
	if err := d.UntagImage(ctx, "busy:1"); err == nil || IsNotFound(err) || !strings.Contains(err.Error(), "is using its referenced image") {
		t.Errorf("got %v, want the daemon's refusal", err)
	}
}

func TestSaveImages(t *testing.T) {
	archive := "a tar archive, as far as this test cares"
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"GET /images/get": func(w http.ResponseWriter, r *http.Request) {
			if names := r.URL.Query()["names"]; slices.Contains(names, "nosuch:1") {
				apiError(w, 404, "reference does not exist")
				return
			}
			w.Header().Set("Content-Type", "application/x-tar")
			io.WriteString(w, archive)
		},
	})
	d := f.dial()
	ctx := context.Background()
	rc, err := d.SaveImages(ctx, []string{"pause:3.10", "etcd:3.7.0-0"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(data) != archive {
		t.Errorf("got %q, %v", data, err)
	}
	if names := f.last("GET /images/get").Query["names"]; !slices.Equal(names, []string{"pause:3.10", "etcd:3.7.0-0"}) {
		t.Errorf("names %v", names)
	}
	rc, err = d.SaveImages(ctx, []string{"nosuch:1"})
	if !IsNotFound(err) || rc != nil {
		t.Errorf("got %v, %v; want not found and no stream", rc, err)
	}
}

func TestLoadImages(t *testing.T) {
	var answer http.HandlerFunc
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"POST /images/load": func(w http.ResponseWriter, r *http.Request) { answer(w, r) },
	})
	d := f.dial()
	ctx := context.Background()

	answer = jsonStream(`{"stream":"Loaded image: registry.k8s.io/pause:3.10\n"}`)
	if err := d.LoadImages(ctx, strings.NewReader("the archive")); err != nil {
		t.Fatal(err)
	}
	r := f.last("POST /images/load")
	if string(r.Body) != "the archive" || r.Header.Get("Content-Type") != "application/x-tar" || r.Query.Get("quiet") != "1" {
		t.Errorf("sent %q, content type %q, query %v", r.Body, r.Header.Get("Content-Type"), r.Query)
	}

	// A bad archive is reported in the stream, with status 200.
	answer = jsonStream(`{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}`)
	if err := d.LoadImages(ctx, strings.NewReader("half an archive")); err == nil || !strings.Contains(err.Error(), "loading images:") || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("got %v", err)
	}

	answer = fail(500, "no space left on device")
	if err := d.LoadImages(ctx, strings.NewReader("the archive")); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("got %v", err)
	}

	// The stream breaks off.
	answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, `{"stream":"Loa`)
	}
	if err := d.LoadImages(ctx, strings.NewReader("the archive")); err == nil {
		t.Error("a broken answer should be an error")
	}
}

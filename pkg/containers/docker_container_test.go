package containers

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// createRoutes accept any container creation, answering with id.
func createRoutes(id string) map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"POST /containers/create": reply(201, map[string]any{"Id": id, "Warnings": []string{}}),
	}
}

// created decodes the last creation request the daemon received.
func created(t *testing.T, f *engineAPI) (name string, req container.CreateRequest) {
	t.Helper()
	r := f.last("POST /containers/create")
	if err := json.Unmarshal(r.Body, &req); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
	if req.Config == nil || req.HostConfig == nil {
		t.Fatalf("no Config or HostConfig in %s", r.Body)
	}
	return r.Query.Get("name"), req
}

func TestCreateContainerSendsTheSpec(t *testing.T) {
	f := newEngineAPI(t, createRoutes("4f1c0ffee"))
	s := Spec{
		Name:       "dk8s-kubelet",
		Image:      "registry.k8s.io/pause:3.10",
		Entrypoint: []string{"/usr/local/bin/dk8s"},
		Args:       []string{"kubelet", "--v=2"},
		Env:        []string{"A=1"},
		User:       "0:0",
		Labels:     map[string]string{LabelComponent: "kubelet", LabelDir: "/var/lib/dk8s"},
		Mounts: []Mount{
			{Source: "/var/lib/dk8s", Target: "/var/lib/dk8s"},
			{Source: "/etc/dk8s", Target: "/etc/dk8s", ReadOnly: true},
			{Source: "/var/lib/kubelet", Target: "/var/lib/kubelet", Propagation: "rshared"},
			{Source: "/lib/modules", Target: "/lib/modules", ReadOnly: true, Propagation: "rslave"},
		},
		HostNetwork:    true,
		RestartAlways:  true,
		HostNamespaces: true,
	}
	id, err := f.dial().CreateContainer(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if id != "4f1c0ffee" {
		t.Errorf("ID %q", id)
	}
	name, req := created(t, f)
	if name != "dk8s-kubelet" {
		t.Errorf("name %q", name)
	}
	cfg, host := req.Config, req.HostConfig
	if cfg.Image != s.Image || !slices.Equal(cfg.Entrypoint, s.Entrypoint) || !slices.Equal(cfg.Cmd, s.Args) ||
		!slices.Equal(cfg.Env, s.Env) || cfg.User != "0:0" || cfg.Labels[LabelComponent] != "kubelet" || cfg.Labels[LabelDir] != "/var/lib/dk8s" {
		t.Errorf("config %+v", cfg)
	}
	if host.NetworkMode != "host" {
		t.Errorf("network mode %q", host.NetworkMode)
	}
	if host.RestartPolicy.Name != container.RestartPolicyAlways {
		t.Errorf("restart policy %+v", host.RestartPolicy)
	}
	wantBinds := []string{
		"/var/lib/dk8s:/var/lib/dk8s",
		"/etc/dk8s:/etc/dk8s:ro",
		"/var/lib/kubelet:/var/lib/kubelet:rshared",
		"/lib/modules:/lib/modules:ro,rslave",
	}
	if !slices.Equal(host.Binds, wantBinds) {
		t.Errorf("binds %q, want %q", host.Binds, wantBinds)
	}
	if host.PidMode != "host" || host.IpcMode != "host" || host.UTSMode != "host" || host.CgroupnsMode != "host" {
		t.Errorf("namespaces pid %q ipc %q uts %q cgroup %q", host.PidMode, host.IpcMode, host.UTSMode, host.CgroupnsMode)
	}
	if host.Privileged || len(host.CapAdd) > 0 || len(host.CapDrop) > 0 || len(host.SecurityOpt) > 0 {
		t.Errorf("an unprivileged spec got privileged %v, add %v, drop %v, security %v", host.Privileged, host.CapAdd, host.CapDrop, host.SecurityOpt)
	}
}

func TestCreateContainerDefaults(t *testing.T) {
	f := newEngineAPI(t, createRoutes("1"))
	if _, err := f.dial().CreateContainer(context.Background(), Spec{Name: "x", Image: "pause:3.10"}); err != nil {
		t.Fatal(err)
	}
	_, req := created(t, f)
	host := req.HostConfig
	if host.NetworkMode != "" || host.RestartPolicy.Name != "" || len(host.Binds) > 0 || host.PidMode != "" || host.Privileged {
		t.Errorf("a bare spec got %+v", host)
	}
}

// What a privileged spec asks of the daemon depends on the bounding set of
// the process that asks.
func TestCreatePrivilegedContainerOnThisHost(t *testing.T) {
	f := newEngineAPI(t, createRoutes("1"))
	if _, err := f.dial().CreateContainer(context.Background(), Spec{Name: "x", Image: "pause:3.10", Privileged: true}); err != nil {
		t.Fatal(err)
	}
	_, req := created(t, f)
	host := req.HostConfig
	missing := MissingCapabilities()
	if len(missing) == 0 {
		if !host.Privileged || len(host.CapAdd) > 0 || len(host.CapDrop) > 0 {
			t.Errorf("with every capability: privileged %v, add %v, drop %v; want privileged alone", host.Privileged, host.CapAdd, host.CapDrop)
		}
		return
	}
	var want []string
	for _, m := range missing {
		want = append(want, "CAP_"+m)
	}
	slices.Sort(want)
	if host.Privileged || !slices.Equal(host.CapAdd, []string{"ALL"}) || !slices.Equal(host.CapDrop, want) {
		t.Errorf("lacking %v: privileged %v, add %v, drop %v", missing, host.Privileged, host.CapAdd, host.CapDrop)
	}
}

// In a sandbox whose root lacks capabilities, through the Engine API: the
// container gets every capability but those, and none of the confinement a
// privileged one would shed; a name the daemon does not know is taken out
// of CapDrop and the creation asked again.
func TestCreatePrivilegedContainerInASandbox(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []container.CreateRequest
	)
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"POST /containers/create": func(w http.ResponseWriter, r *http.Request) {
			var req container.CreateRequest
			json.NewDecoder(r.Body).Decode(&req)
			mu.Lock()
			bodies = append(bodies, req)
			mu.Unlock()
			// Docker 20.10 knows no capability after AUDIT_READ.
			if slices.Contains(req.HostConfig.CapDrop, "CAP_BPF") {
				apiError(w, 400, `invalid CapDrop: unknown capability: "CAP_BPF"`)
				return
			}
			writeJSON(w, 201, map[string]any{"Id": "c0ffee"})
		},
	})
	d := f.dial()
	id, err := createContainer(context.Background(), d.c, Spec{Name: "dk8s-kubelet", Image: "pause:3.10", Privileged: true}, []string{"SYS_RESOURCE", "BPF"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if id != "c0ffee" || len(bodies) != 2 {
		t.Fatalf("ID %q after %d requests, want c0ffee after 2", id, len(bodies))
	}
	host := bodies[1].HostConfig
	if host.Privileged || !slices.Equal(host.CapAdd, []string{"ALL"}) || !slices.Equal(host.CapDrop, []string{"CAP_SYS_RESOURCE"}) {
		t.Errorf("privileged %v, add %v, drop %v", host.Privileged, host.CapAdd, host.CapDrop)
	}
	if !slices.Equal(host.SecurityOpt, []string{"seccomp=unconfined", "apparmor=unconfined"}) || !slices.Equal(host.DeviceCgroupRules, []string{"a *:* rwm"}) {
		t.Errorf("security %v, device rules %v", host.SecurityOpt, host.DeviceCgroupRules)
	}
}

func TestCreateContainerErrors(t *testing.T) {
	ctx := context.Background()
	f := newEngineAPI(t, map[string]http.HandlerFunc{"POST /containers/create": fail(404, "No such image: nosuch:1")})
	_, err := f.dial().CreateContainer(ctx, Spec{Name: "dk8s-etcd", Image: "nosuch:1"})
	if !IsNotFound(err) || !strings.Contains(err.Error(), "creating container dk8s-etcd") || !strings.Contains(err.Error(), "No such image: nosuch:1") {
		t.Errorf("got %v", err)
	}

	f = newEngineAPI(t, map[string]http.HandlerFunc{"POST /containers/create": fail(409, `Conflict. The container name "/dk8s-etcd" is already in use by container "0123". You have to remove (or rename) that container to be able to reuse that name.`)})
	_, err = f.dial().CreateContainer(ctx, Spec{Name: "dk8s-etcd", Image: "etcd:3.7.0-0"})
	if err == nil || IsNotFound(err) || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("got %v", err)
	}
}

func TestStartStopRemove(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"POST /containers/dk8s-etcd/start": status(204),
		"POST /containers/dk8s-etcd/stop":  status(204),
		"DELETE /containers/dk8s-etcd":     status(204),
		// Starting a running container, stopping a stopped one.
		"POST /containers/running/start": status(304),
		"POST /containers/stopped/stop":  status(304),
		"POST /containers/gone/start":    fail(404, "No such container: gone"),
		"POST /containers/gone/stop":     fail(404, "No such container: gone"),
		"DELETE /containers/gone":        fail(404, "No such container: gone"),
		"DELETE /containers/busy":        fail(409, "removal of container busy is already in progress"),
		"POST /containers/broken/start":  fail(500, "failed to create shim task: OCI runtime create failed: unable to apply caps: operation not permitted"),
	})
	d := f.dial()
	ctx := context.Background()
	if err := d.StartContainer(ctx, "dk8s-etcd"); err != nil {
		t.Error(err)
	}
	if err := d.StopContainer(ctx, "dk8s-etcd", 30*time.Second); err != nil {
		t.Error(err)
	}
	if q := f.last("POST /containers/dk8s-etcd/stop").Query; q.Get("t") != "30" {
		t.Errorf("stop query %v, want t=30", q)
	}
	if err := d.StopContainer(ctx, "dk8s-etcd", 0); err != nil {
		t.Error(err)
	}
	if q := f.last("POST /containers/dk8s-etcd/stop").Query; q.Get("t") != "0" {
		t.Errorf("stop query %v, want t=0", q)
	}
	if err := d.RemoveContainer(ctx, "dk8s-etcd"); err != nil {
		t.Error(err)
	}
	if q := f.last("DELETE /containers/dk8s-etcd").Query; q.Get("force") != "1" || q.Has("v") {
		t.Errorf("remove query %v: want force, and no volumes removed", q)
	}

	if err := d.StartContainer(ctx, "running"); err != nil {
		t.Errorf("starting a running container: %v", err)
	}
	if err := d.StopContainer(ctx, "stopped", time.Second); err != nil {
		t.Errorf("stopping a stopped container: %v", err)
	}

	for what, err := range map[string]error{
		"start":  d.StartContainer(ctx, "gone"),
		"stop":   d.StopContainer(ctx, "gone", time.Second),
		"remove": d.RemoveContainer(ctx, "gone"),
	} {
		if !IsNotFound(err) || !strings.Contains(err.Error(), "No such container: gone") {
			t.Errorf("%s: got %v, want not found", what, err)
		}
	}
	if err := d.RemoveContainer(ctx, "busy"); err == nil || IsNotFound(err) {
		t.Errorf("got %v", err)
	}
	if err := d.StartContainer(ctx, "broken"); err == nil || IsNotFound(err) || !strings.Contains(err.Error(), "unable to apply caps") {
		t.Errorf("got %v", err)
	}
}

func TestInspectContainer(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"GET /containers/dk8s-etcd/json": reply(200, map[string]any{
			"Id":           "9f2a",
			"Name":         "/dk8s-etcd",
			"Image":        "sha256:aaaa",
			"RestartCount": 3,
			"State": map[string]any{
				"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0,
				"StartedAt": "2024-05-01T12:34:56.123456789Z", "FinishedAt": "0001-01-01T00:00:00Z",
			},
			"Config": map[string]any{"Image": "registry.k8s.io/etcd:3.7.0-0", "Labels": map[string]string{LabelComponent: "etcd"}},
		}),
		"GET /containers/exited/json": reply(200, map[string]any{
			"Id": "1", "Name": "/exited",
			"State": map[string]any{"Status": "exited", "ExitCode": 137, "StartedAt": "not a time"},
		}),
		"GET /containers/bare/json": reply(200, map[string]any{"Id": "2", "Name": "/bare"}),
		"GET /containers/gone/json": fail(404, "No such container: gone"),
	})
	d := f.dial()
	ctx := context.Background()
	c, err := d.InspectContainer(ctx, "dk8s-etcd")
	if err != nil {
		t.Fatal(err)
	}
	want := Container{
		ID: "9f2a", Name: "dk8s-etcd", Image: "registry.k8s.io/etcd:3.7.0-0", ImageID: "sha256:aaaa",
		State: "running", Running: true, Pid: 4242, RestartCount: 3,
		StartedAt: time.Date(2024, 5, 1, 12, 34, 56, 123456789, time.UTC),
	}
	if c.Labels[LabelComponent] != "etcd" || len(c.Labels) != 1 {
		t.Errorf("labels %v", c.Labels)
	}
	c.Labels = nil
	if !c.StartedAt.Equal(want.StartedAt) {
		t.Errorf("started at %v, want %v", c.StartedAt, want.StartedAt)
	}
	c.StartedAt = want.StartedAt
	if !containerEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}

	c, err = d.InspectContainer(ctx, "exited")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != "exited" || c.Running || c.ExitCode != 137 || !c.StartedAt.IsZero() || c.Image != "" {
		t.Errorf("got %+v", c)
	}

	c, err = d.InspectContainer(ctx, "bare")
	if err != nil {
		t.Fatal(err)
	}
	if !containerEqual(c, Container{ID: "2", Name: "bare"}) {
		t.Errorf("got %+v", c)
	}

	if _, err := d.InspectContainer(ctx, "gone"); !IsNotFound(err) {
		t.Errorf("got %v, want not found", err)
	}
}

// containerEqual compares containers, labels by content.
func containerEqual(a, b Container) bool {
	if !maps.Equal(a.Labels, b.Labels) {
		return false
	}
	a.Labels, b.Labels = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestListContainers(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"GET /containers/json": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("filters") == "" {
				writeJSON(w, 200, []any{})
				return
			}
			writeJSON(w, 200, []map[string]any{
				{"Id": "a1", "Names": []string{"/dk8s-etcd"}, "Image": "registry.k8s.io/etcd:3.7.0-0", "State": "running", "Labels": map[string]string{LabelComponent: "etcd", LabelCluster: "c"}},
				{"Id": "b2", "Names": []string{"/dk8s-kube-apiserver"}, "Image": "registry.k8s.io/kube-apiserver:v1.35.0", "State": "exited", "Labels": map[string]string{LabelComponent: "kube-apiserver", LabelCluster: "c"}},
				{"Id": "c3", "Image": "pause:3.10", "State": "created"},
			})
		},
	})
	d := f.dial()
	ctx := context.Background()
	got, err := d.ListContainers(ctx, map[string]string{LabelCluster: "c", LabelComponent: "etcd"})
	if err != nil {
		t.Fatal(err)
	}
	q := f.last("GET /containers/json").Query
	if q.Get("all") != "1" {
		t.Errorf("query %v: stopped containers must be listed too", q)
	}
	var filters map[string]map[string]bool
	if err := json.Unmarshal([]byte(q.Get("filters")), &filters); err != nil {
		t.Fatalf("filters %q: %v", q.Get("filters"), err)
	}
	if len(filters) != 1 || len(filters["label"]) != 2 || !filters["label"][LabelCluster+"=c"] || !filters["label"][LabelComponent+"=etcd"] {
		t.Errorf("filters %v", filters)
	}
	want := []Container{
		{ID: "a1", Name: "dk8s-etcd", Image: "registry.k8s.io/etcd:3.7.0-0", State: "running", Running: true, Labels: map[string]string{LabelComponent: "etcd", LabelCluster: "c"}},
		{ID: "b2", Name: "dk8s-kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.35.0", State: "exited", Labels: map[string]string{LabelComponent: "kube-apiserver", LabelCluster: "c"}},
		{ID: "c3", Image: "pause:3.10", State: "created"},
	}
	if !slices.EqualFunc(got, want, containerEqual) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	got, err = d.ListContainers(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("got %v, %v", got, err)
	}
	if q := f.last("GET /containers/json").Query; q.Has("filters") {
		t.Errorf("no labels, yet filters %q", q.Get("filters"))
	}
}

func TestListContainersError(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{"GET /containers/json": fail(400, `invalid filter 'label'`)})
	if got, err := f.dial().ListContainers(context.Background(), map[string]string{"a": "b"}); err == nil || got != nil {
		t.Errorf("got %v, %v", got, err)
	}
}

// logsRoute answers with the frames given in Docker's multiplexed format,
// as dockerd does for a container without a TTY.
func logsRoute(frames ...[]byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		for _, f := range frames {
			w.Write(f)
		}
	}
}

func TestContainerLogsDemultiplexes(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"GET /containers/dk8s-etcd/logs": logsRoute(
			frame(1, "starting etcd\n"),
			frame(2, "warning: slow disk\n"),
			frame(1, "ready to serve\n"),
			frame(2, ""),
			frame(2, strings.Repeat("x", 40000)+"\n"),
		),
		"GET /containers/gone/logs": fail(404, "No such container: gone"),
	})
	d := f.dial()
	ctx := context.Background()
	var stdout, stderr strings.Builder
	if err := d.ContainerLogs(ctx, "dk8s-etcd", LogsOptions{}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "starting etcd\nready to serve\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	if want := "warning: slow disk\n" + strings.Repeat("x", 40000) + "\n"; stderr.String() != want {
		t.Errorf("stderr is %d bytes beginning %q, want %d bytes", stderr.Len(), stderr.String()[:min(30, stderr.Len())], len(want))
	}
	q := f.last("GET /containers/dk8s-etcd/logs").Query
	if q.Get("stdout") != "1" || q.Get("stderr") != "1" || q.Has("tail") || q.Has("follow") {
		t.Errorf("query %v: want both streams, all of them, without following", q)
	}

	for tail, want := range map[string]string{"all": "", "20": "20"} {
		if err := d.ContainerLogs(ctx, "dk8s-etcd", LogsOptions{Tail: tail}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		if got := f.last("GET /containers/dk8s-etcd/logs").Query.Get("tail"); got != want {
			t.Errorf("tail %q sent as %q, want %q", tail, got, want)
		}
	}

	if err := d.ContainerLogs(ctx, "gone", LogsOptions{}, io.Discard, io.Discard); !IsNotFound(err) {
		t.Errorf("got %v, want not found", err)
	}
}

func TestContainerLogsStreamErrors(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		// The daemon reports its own failure in the stream.
		"GET /containers/a/logs": logsRoute(frame(1, "line\n"), frame(3, "error from daemon in stream: log file is corrupt")),
		// Not the multiplexed format.
		"GET /containers/b/logs": logsRoute([]byte("this is no multiplexed stream at all\n")),
	})
	d := f.dial()
	ctx := context.Background()
	var stdout strings.Builder
	err := d.ContainerLogs(ctx, "a", LogsOptions{}, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "log file is corrupt") {
		t.Errorf("got %v", err)
	}
	if stdout.String() != "line\n" {
		t.Errorf("stdout %q: what came before the error should be written", stdout.String())
	}
	if err := d.ContainerLogs(ctx, "b", LogsOptions{}, io.Discard, io.Discard); err == nil {
		t.Error("a stream not in the multiplexed format should be an error")
	}
}

// cancelingWriter cancels its context once it was written to.
type cancelingWriter struct {
	strings.Builder
	cancel context.CancelFunc
}

func (w *cancelingWriter) Write(p []byte) (int, error) {
	defer w.cancel()
	return w.Builder.Write(p)
}

// Following logs ends, without error, when the caller gives up.
func TestContainerLogsFollowEndsWithItsContext(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"GET /containers/dk8s-etcd/logs": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
			w.Write(frame(1, "line 1\n"))
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
	stdout := &cancelingWriter{cancel: cancel}
	finished := make(chan error, 1)
	go func() {
		finished <- d.ContainerLogs(ctx, "dk8s-etcd", LogsOptions{Follow: true, Tail: "10"}, stdout, io.Discard)
	}()
	select {
	case err := <-finished:
		if err != nil {
			t.Errorf("got %v, want nil once the context is canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ContainerLogs did not return when its context was canceled")
	}
	if stdout.String() != "line 1\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	if q := f.last("GET /containers/dk8s-etcd/logs").Query; q.Get("follow") != "1" || q.Get("tail") != "10" {
		t.Errorf("query %v", q)
	}
}

// Ensure, through the Engine API, for a container that does not exist yet:
// the daemon's 404 is what makes it create one.
func TestEnsureThroughTheEngineAPI(t *testing.T) {
	f := newEngineAPI(t, map[string]http.HandlerFunc{
		"GET /containers/dk8s-etcd/json":   fail(404, "No such container: dk8s-etcd"),
		"POST /containers/create":          reply(201, map[string]any{"Id": "e1"}),
		"POST /containers/dk8s-etcd/start": status(204),
	})
	s := Spec{Name: "dk8s-etcd", Image: "registry.k8s.io/etcd:3.7.0-0", Labels: map[string]string{LabelComponent: "etcd"}}.WithHash()
	got, err := Ensure(context.Background(), f.dial(), s)
	if err != nil || got.Action != Created {
		t.Fatalf("got %v, %v", got, err)
	}
	want := []string{"GET /containers/dk8s-etcd/json", "POST /containers/create", "POST /containers/dk8s-etcd/start"}
	if r := f.received(); !slices.Equal(r, want) {
		t.Errorf("requests %v, want %v", r, want)
	}
	_, req := created(t, f)
	if req.Config.Labels[LabelSpecHash] != s.Hash() {
		t.Errorf("labels %v: the spec hash must be on the container", req.Config.Labels)
	}
}

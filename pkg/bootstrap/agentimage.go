package bootstrap

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
)

// AgentBinary is where the node agent's image keeps dk8s.
const AgentBinary = "/bin/dk8s"

// AgentImage makes the node agent's image, ref, in engine from the dk8s
// binary at self: that one file, an empty /tmp, and dk8s as the
// entrypoint. dk8s is static, so the image needs no base: nothing is
// pulled for it and nothing but this binary is in it to be trusted, and a
// machine with Docker and the dk8s binary makes it with no registry at all.
func AgentImage(ctx context.Context, engine containers.Engine, self, ref string) error {
	if err := host.CheckStatic(self); err != nil {
		return err
	}
	f, err := os.Open(self)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeAgentRoot(pw, f, fi.Size())) }()
	defer pr.Close()
	changes := []string{`ENTRYPOINT ["` + AgentBinary + `"]`, `CMD ["agent", "--help"]`}
	if err := engine.ImportImage(ctx, pr, ref, changes); err != nil {
		return fmt.Errorf("making the agent's image %s: %w", ref, err)
	}
	return nil
}

// writeAgentRoot writes the agent image's one layer to w: /bin/dk8s (size
// bytes read from bin) and /tmp, root's, with a fixed time, so the same
// binary always makes the same layer.
func writeAgentRoot(w io.Writer, bin io.Reader, size int64) error {
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: epoch},
		{Name: AgentBinary[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: size, ModTime: epoch},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if n, err := io.Copy(tw, bin); err != nil {
		return err
	} else if n != size {
		return fmt.Errorf("the dk8s binary changed while it was read: %d bytes, had %d", n, size)
	}
	return tw.Close()
}

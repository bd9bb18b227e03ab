package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Runner runs a command on the host. It is the one door through which this
// package changes or asks the host by a command, so tests put a fake in its
// place.
type Runner interface {
	// Run runs name with args, fed stdin when it is not nil, until it exits
	// or ctx ends. It returns what the command wrote to its standard
	// output, kept apart from its standard error so that it can be parsed
	// (iptables and ctr warn on stderr); a failure's error carries the
	// standard error's text.
	Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error)
}

// Exec is the Runner over os/exec, on this machine.
type Exec struct{}

// Run implements Runner.
func (Exec) Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if msg := strings.TrimSpace(stderr.String()); err != nil && msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	return out, err
}

// RunAttached runs path with args on this machine as a user's own
// command: its standard streams are the ones given, env is added to
// dk8s's, and its exit code is returned, not made an error. An error means
// it could not run. When ctx ends it is asked to stop with SIGTERM, as a
// shell would ask it, not killed: a 'kubectl port-forward' or 'logs -f'
// ends cleanly.
func RunAttached(ctx context.Context, path string, args, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		// Killed by a signal, it ends as a shell reports it: 128+N.
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running %s: %w", path, err)
	}
	return 0, nil
}

// Systemctl runs systemctl with args through r.
func Systemctl(ctx context.Context, r Runner, args ...string) error {
	if _, err := r.Run(ctx, nil, "systemctl", args...); err != nil {
		return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

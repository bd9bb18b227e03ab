package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
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

// Systemctl runs systemctl with args through r.
func Systemctl(ctx context.Context, r Runner, args ...string) error {
	if _, err := r.Run(ctx, nil, "systemctl", args...); err != nil {
		return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Package hosttest is a fake host.Runner for unit tests of the code that
// runs host commands: it records every command and answers it with canned
// output, and runs nothing.
package hosttest

import (
	"context"
	"io"
	"strings"
	"sync"
)

// Runner records the commands it is given and answers them through Answer.
// The zero value answers every command with no output and no error.
type Runner struct {
	mu sync.Mutex
	// Calls lists every command run, its name and arguments joined by
	// spaces: "ctr --address /run/dk8s/containerd/containerd.sock version".
	Calls []string
	// Argv lists every command as its name and arguments, apart.
	Argv [][]string
	// Stdin holds what each command was fed, by the index of its call.
	Stdin map[int][]byte
	// Answer, when set, gives a command's output and error; cmd is as in
	// Calls, n counts the calls of that same command before this one.
	Answer func(cmd string, n int) ([]byte, error)
}

// Run implements host.Runner.
func (r *Runner) Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	var in []byte
	if stdin != nil {
		var err error
		if in, err = io.ReadAll(stdin); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	n := 0
	for _, c := range r.Calls {
		if c == cmd {
			n++
		}
	}
	if in != nil {
		if r.Stdin == nil {
			r.Stdin = map[int][]byte{}
		}
		r.Stdin[len(r.Calls)] = in
	}
	r.Calls = append(r.Calls, cmd)
	r.Argv = append(r.Argv, append([]string{name}, args...))
	answer := r.Answer
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if answer == nil {
		return nil, nil
	}
	return answer(cmd, n)
}

// Commands returns the calls whose command starts with prefix, in order.
func (r *Runner) Commands(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.Calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

package host

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

func TestExecKeepsStdoutApart(t *testing.T) {
	out, err := Exec{}.Run(context.Background(), strings.NewReader("fed"), "sh", "-c", "cat; echo; echo warning >&2")
	if err != nil || string(out) != "fed\n" {
		t.Fatalf("stdout should be the command's alone: %q, %v", out, err)
	}
	_, err = Exec{}.Run(context.Background(), nil, "sh", "-c", "echo partial; echo 'no such chain' >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "exit status 3: no such chain") {
		t.Errorf("a failure should carry its stderr: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (Exec{}).Run(ctx, nil, "sleep", "10"); err == nil {
		t.Error("a cancelled context should stop the command")
	}
}

func TestSystemctl(t *testing.T) {
	r := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		if strings.Contains(cmd, "enable") {
			return nil, errors.New("exit status 1: Unit file dk8s-x.service does not exist.")
		}
		return nil, nil
	}}
	if err := Systemctl(context.Background(), r, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	err := Systemctl(context.Background(), r, "enable", "dk8s-x.service")
	if err == nil || err.Error() != "systemctl enable dk8s-x.service: exit status 1: Unit file dk8s-x.service does not exist." {
		t.Errorf("the error should name the command and carry systemctl's words: %v", err)
	}
	if strings.Join(r.Calls, "|") != "systemctl daemon-reload|systemctl enable dk8s-x.service" {
		t.Errorf("ran %q", r.Calls)
	}
}

func TestRunAttached(t *testing.T) {
	var out, errb bytes.Buffer
	code, err := RunAttached(context.Background(), "/bin/sh", []string{"-c", `read line; echo "$line $DK8S_X"; echo oops >&2; exit 7`},
		[]string{"DK8S_X=set"}, strings.NewReader("typed\n"), &out, &errb)
	if err != nil || code != 7 || out.String() != "typed set\n" || errb.String() != "oops\n" {
		t.Errorf("RunAttached: code %d, err %v, stdout %q, stderr %q", code, err, out.String(), errb.String())
	}
	if code, err := RunAttached(context.Background(), "/bin/sh", []string{"-c", "kill -TERM $$"}, nil, nil, &out, &errb); err != nil || code != 143 {
		t.Errorf("a command killed by SIGTERM ends 143, as in a shell: %d, %v", code, err)
	}
	if _, err := RunAttached(context.Background(), "/nonexistent/kubectl", nil, nil, nil, &out, &errb); err == nil || !strings.Contains(err.Error(), "running /nonexistent/kubectl") {
		t.Errorf("a command that cannot run is an error: %v", err)
	}
}

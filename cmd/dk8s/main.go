// Command dk8s runs a Kubernetes control plane as Docker-supervised
// containers, with the images it needs pulled through mirrors.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dk8s/dk8s/cmd/dk8s/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.Run(ctx, app.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args[1:])
	if err == nil {
		return
	}
	var silent app.ExitError
	if !errors.As(err, &silent) {
		fmt.Fprintln(os.Stderr, "dk8s: error:", err)
	}
	code := 1
	if errors.As(err, &silent) {
		code = silent.Code
	}
	if ctx.Err() != nil {
		code = 130
	}
	os.Exit(code)
}

// Command captest creates and starts one privileged container through
// pkg/containers, as dk8s does for its node agents, and prints its ID. The
// integration tests run it, statically linked, inside a container whose root
// lacks some capabilities: a machine hosted in Docker or LXC as cheap VPSes
// are.
//
// Usage: captest NAME IMAGE
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dk8s/dk8s/pkg/containers"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: captest NAME IMAGE")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "captest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name, image string) error {
	// What this root lacks, so that the test can tell it reproduced the
	// machine it means to.
	fmt.Println("missing:", strings.Join(containers.MissingCapabilities(), " "))
	engine, err := containers.FromEnv(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	id, err := engine.CreateContainer(ctx, containers.Spec{Name: name, Image: image, Privileged: true})
	if err != nil {
		return err
	}
	if err := engine.StartContainer(ctx, name); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	fmt.Println("started:", id)
	return nil
}

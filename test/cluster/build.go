package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the directory of the main module's go.mod.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("cluster: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == "/dev/null" {
		return "", fmt.Errorf("cluster: not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// Build compiles ./cmd/raftsqld of the module into dir and returns the
// binary's path. The error carries the compiler's output.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "raftsqld")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/raftsqld")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cluster: go build ./cmd/raftsqld: %w\n%s", err, out.String())
	}
	return bin, nil
}

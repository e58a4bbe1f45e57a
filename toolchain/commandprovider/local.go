package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// killGrace is how long a killed command's leftover children may keep its output open.
const killGrace = 5 * time.Second

// runLocal runs command through the interpreter (default /bin/sh -c) in its own process
// group, so that a timeout or cancel kills everything it started.
func runLocal(ctx context.Context, in *commandInputs, command string, env map[string]string,
	stdout, stderr *outputStream,
) error {
	interpreter := in.Interpreter
	if len(interpreter) == 0 {
		interpreter = defaultInterpreter
	}
	if in.Dir != "" {
		info, err := os.Stat(in.Dir)
		if err != nil || !info.IsDir() {
			return fmt.Errorf("dir %q is not an existing directory", in.Dir)
		}
	}
	args := append(append([]string{}, interpreter[1:]...), command)
	cmd := exec.CommandContext(ctx, interpreter[0], args...)
	cmd.Dir = in.Dir
	cmd.Env = os.Environ()
	for _, k := range sortedKeys(env) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	if in.Stdin != nil {
		cmd.Stdin = strings.NewReader(*in.Stdin)
	}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = killGrace
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &exitError{status: -1, signal: ws.Signal().String()}
		}
		return &exitError{status: exit.ExitCode()}
	case errors.Is(err, syscall.E2BIG):
		return fmt.Errorf("%w: the command or its environment is too large (over 128 KiB in "+
			"one string?); if the previous stdout is that large, set addPreviousOutputInEnv "+
			"to false", err)
	default:
		return err
	}
}

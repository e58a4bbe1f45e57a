// Command pulumi-language-python is a minimal Pulumi language host for Python programs.
//
// The Pulumi CLI starts it with the engine's address as its only argument, reads the port
// it serves the LanguageRuntime gRPC service on from its first line of stdout, and asks it
// to Run the program. Running is delegated to the pulumi-language-python-exec script from
// the Pulumi SDK, which must sit beside this binary. The Python used is, in order: the
// `virtualenv` runtime option of Pulumi.yaml (relative to the project root),
// $PULUMI_PYTHON_CMD, or python3 on PATH.
//
// Only what `pulumi preview/up/refresh/destroy` need is implemented: plugins are found by
// the engine on demand (PATH or the plugin cache), dependency installation is left to pip.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set at link time (-X main.version=...).
var version = "0.0.0-dev"

const (
	execScriptName = "pulumi-language-python-exec"
	// Exit code the exec script uses after it already showed the user an error.
	bailExitCode = 32
)

func main() {
	tracing := flag.String("tracing", "", "Zipkin-compatible tracing endpoint (passed to the program)")
	flag.String("root", "", "Project root (unused; the engine sends it with each request)")
	flag.Parse()
	if flag.NArg() < 1 {
		fail("missing required engine RPC address argument")
	}
	execScript, err := findExecScript()
	if err != nil {
		fail(err.Error())
	}
	engineAddress := flag.Arg(0)
	host := &pythonHost{engineAddress: engineAddress, execScript: execScript, tracing: *tracing}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Exit when the engine goes away, like every plugin.
	go func() { _ = rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel) }()

	cancelServe := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancelServe)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelServe,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fail(fmt.Sprintf("could not start the language host RPC server: %v", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail(fmt.Sprintf("language host RPC server stopped: %v", err))
	}
}

func fail(msg string) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %s\n", msg)
	os.Exit(1)
}

// findExecScript returns the exec script beside this binary.
func findExecScript() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot locate this executable: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	script := filepath.Join(filepath.Dir(self), execScriptName)
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("missing executor %s: install it beside this binary", script)
	}
	return script, nil
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string
	tracing       string
}

func (h *pythonHost) Handshake(
	context.Context, *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *pythonHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// GetRequiredPlugins reports none: the engine loads each provider when a resource needs it.
func (h *pythonHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

// GetRequiredPackages reports none, like GetRequiredPlugins.
func (h *pythonHost) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *pythonHost) GetProgramDependencies(
	context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *pythonHost) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	python, _, err := selectPython(req.GetInfo())
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(python, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version failed: %w", python, err)
	}
	ver := strings.TrimSpace(strings.TrimPrefix(string(out), "Python "))
	return &pulumirpc.AboutResponse{Executable: python, Version: ver}, nil
}

// Run executes the program through the exec script and reports how it ended.
func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	python, env, err := selectPython(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	program := req.GetProgram()
	if info != nil && info.GetProgramDirectory() != "" {
		program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
	}
	args := []string{
		"-u", h.execScript,
		"--monitor", req.GetMonitorAddress(),
		"--engine", h.engineAddress,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--dry_run", strconv.FormatBool(req.GetDryRun()),
		"--parallel", strconv.Itoa(int(req.GetParallel())),
	}
	if req.GetOrganization() != "" {
		args = append(args, "--organization", req.GetOrganization())
	}
	if info != nil && info.GetRootDirectory() != "" {
		args = append(args, "--root_directory", info.GetRootDirectory())
	}
	if h.tracing != "" {
		args = append(args, "--tracing", h.tracing)
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	// A stack without config must still give the program an object, never `null`.
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("encoding secret config keys: %w", err)
	}
	env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secrets))

	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = req.GetPwd()
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
		}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run %s: %v", python, err)}, nil
	}
}

// selectPython picks the interpreter and its environment from the runtime options.
func selectPython(info *pulumirpc.ProgramInfo) (string, []string, error) {
	env := os.Environ()
	options := map[string]any{}
	if info != nil && info.GetOptions() != nil {
		options = info.GetOptions().AsMap()
	}
	if tc, _ := options["toolchain"].(string); tc != "" && tc != "pip" {
		return "", nil, fmt.Errorf("runtime option toolchain=%q is not supported by this language host; "+
			"use toolchain: pip with a virtualenv", tc)
	}
	if venv, _ := options["virtualenv"].(string); venv != "" {
		if !filepath.IsAbs(venv) && info != nil {
			venv = filepath.Join(info.GetRootDirectory(), venv)
		}
		python := filepath.Join(venv, "bin", "python")
		if _, err := os.Stat(python); err != nil {
			return "", nil, fmt.Errorf("the virtualenv %s named in Pulumi.yaml has no bin/python: create it with "+
				"`python3 -m venv %s` and install the requirements into it", venv, venv)
		}
		env = append(withoutVar(withoutVar(env, "PYTHONHOME"), "PATH"),
			"VIRTUAL_ENV="+venv,
			"PATH="+filepath.Join(venv, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
		return python, env, nil
	}
	name := os.Getenv("PULUMI_PYTHON_CMD")
	if name == "" {
		name = "python3"
	}
	python, err := exec.LookPath(name)
	if err != nil {
		return "", nil, fmt.Errorf("no Python interpreter %q on PATH: install python3, set "+
			"PULUMI_PYTHON_CMD, or set runtime.options.virtualenv in Pulumi.yaml", name)
	}
	return python, env, nil
}

func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Command pulumi-resource-command is a Pulumi resource provider that runs shell commands,
// compatible with the `command` package's SDKs at version 1.2.1 (PyPI pulumi-command 1.2.1).
//
// It implements the resources a program needs to drive machines:
//
//   - command:local:Command        runs create/update/delete through an interpreter on this host
//   - command:remote:Command       runs them over SSH (golang.org/x/crypto/ssh, in-process)
//   - command:remote:CopyToRemote  copies a FileAsset, StringAsset or FileArchive over SSH
//
// Everything else the package offers (the deprecated command:remote:CopyFile, the local:run
// and remote invokes, assetPaths/archivePaths) is refused with an error that says to use the
// official release.
//
// The engine starts it with its RPC address as the only argument; provider.Main from the
// Pulumi Go SDK serves the ResourceProvider gRPC service and prints the port.
//
// Unit tests: copy this directory into a module that requires
// github.com/pulumi/pulumi/sdk/v3 v3.274.1 and run `go test ./...` there;
// tests/toolchain/test_command_provider.py does exactly that.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// version is set at link time (-X main.version=...).
var version = "0.0.0-dev"

const packageName = "command"

func main() {
	err := provider.Main(packageName, func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return newCommandProvider(host), nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-command: %v\n", err)
		os.Exit(1)
	}
}

// commandProvider serves command:local:Command, command:remote:Command and
// command:remote:CopyToRemote.
type commandProvider struct {
	pulumirpc.UnimplementedResourceProviderServer

	host *provider.HostClient // nil when nobody can receive logs (attach mode, tests)
	// cancelled by the Cancel RPC: every running command is stopped.
	cancelCtx context.Context
	cancelAll context.CancelFunc
}

func newCommandProvider(host *provider.HostClient) *commandProvider {
	ctx, cancel := context.WithCancel(context.Background())
	return &commandProvider{host: host, cancelCtx: ctx, cancelAll: cancel}
}

// rpcOptions keeps unknowns, secrets and resource references intact, so that a secret input
// (the SDK always makes `connection` secret) stays secret in the outputs.
func rpcOptions(label string) plugin.MarshalOptions {
	return plugin.MarshalOptions{
		Label:         label,
		KeepUnknowns:  true,
		KeepSecrets:   true,
		KeepResources: true,
		SkipNulls:     true,
	}
}

func unmarshal(props *structpb.Struct, label string) (resource.PropertyMap, error) {
	m, err := plugin.UnmarshalProperties(props, rpcOptions(label))
	if err != nil {
		return nil, fmt.Errorf("%s: cannot decode properties: %w", label, err)
	}
	if m == nil {
		m = resource.PropertyMap{}
	}
	return m, nil
}

func marshal(props resource.PropertyMap, label string) (*structpb.Struct, error) {
	s, err := plugin.MarshalProperties(props, rpcOptions(label))
	if err != nil {
		return nil, fmt.Errorf("%s: cannot encode properties: %w", label, err)
	}
	return s, nil
}

// opContext is the context a command runs under: the request's, cut short by the Cancel
// RPC and by the operation's custom timeout (seconds; 0 = none).
func (p *commandProvider) opContext(ctx context.Context, timeout float64) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.cancelCtx, cancel)
	if timeout > 0 {
		var cancelTimeout context.CancelFunc
		d := time.Duration(timeout * float64(time.Second))
		ctx, cancelTimeout = context.WithTimeoutCause(ctx, d, fmt.Errorf("timed out after %s", d))
		return ctx, func() { cancelTimeout(); stop(); cancel() }
	}
	return ctx, func() { stop(); cancel() }
}

// newID returns a random resource ID.
func newID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate a resource ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func (p *commandProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// GetSchema returns a minimal package schema: this provider serves existing SDKs and is not
// meant to generate new ones.
func (p *commandProvider) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	doc, err := json.Marshal(map[string]string{"name": packageName, "version": version})
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetSchemaResponse{Schema: string(doc)}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *commandProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

// Configure accepts secrets and resource references. Preview is not supported: during a
// preview the engine shows stdout/stderr of a new or changed command as unknown.
func (p *commandProvider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{
		AcceptSecrets:   true,
		AcceptResources: true,
		SupportsPreview: false,
	}, nil
}

func (p *commandProvider) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	return nil, fmt.Errorf("%s is not supported by this build of the command provider; "+
		"use the official release of pulumi-resource-command", req.GetTok())
}

func (p *commandProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	p.cancelAll()
	return &emptypb.Empty{}, nil
}

// Check validates the inputs and applies the defaults the schema declares.
func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	typ, err := resourceType(req.GetUrn(), req.GetType())
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews(), "check.news")
	if err != nil {
		return nil, err
	}
	inputs, failures := checkInputs(typ, news)
	out, err := marshal(inputs, "check.inputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: out, Failures: failures}, nil
}

// Diff compares the old inputs with the new ones (see diffInputs).
func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	typ, err := resourceType(req.GetUrn(), req.GetType())
	if err != nil {
		return nil, err
	}
	var olds resource.PropertyMap
	if req.GetOldInputs() != nil {
		olds, err = unmarshal(req.GetOldInputs(), "diff.oldInputs")
	} else {
		olds, err = unmarshal(req.GetOlds(), "diff.olds")
	}
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews(), "diff.news")
	if err != nil {
		return nil, err
	}
	return diffInputs(typ, olds, news), nil
}

// Create runs `create` (if set); a failing command fails the create and nothing is recorded.
func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	typ, err := resourceType(req.GetUrn(), req.GetType())
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		return &pulumirpc.CreateResponse{Properties: req.GetProperties()}, nil
	}
	props, err := unmarshal(req.GetProperties(), "create.properties")
	if err != nil {
		return nil, err
	}
	if typ == copyToRemoteType {
		return p.createCopy(ctx, req, props)
	}
	in, err := decodeInputs(typ, props)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.opContext(ctx, req.GetTimeout())
	defer cancel()
	res, err := p.run(ctx, resource.URN(req.GetUrn()), in, "create", in.Create, nil)
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	out, err := marshal(withOutputs(props, res), "create.outputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: out}, nil
}

// Update runs `update`, or `create` when there is no update command, with the previous
// stdout/stderr in PULUMI_COMMAND_STDOUT/PULUMI_COMMAND_STDERR (addPreviousOutputInEnv).
func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	typ, err := resourceType(req.GetUrn(), req.GetType())
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		return &pulumirpc.UpdateResponse{Properties: req.GetNews()}, nil
	}
	olds, err := unmarshal(req.GetOlds(), "update.olds")
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews(), "update.news")
	if err != nil {
		return nil, err
	}
	if typ == copyToRemoteType {
		return p.updateCopy(ctx, req, news)
	}
	in, err := decodeInputs(typ, news)
	if err != nil {
		return nil, err
	}
	prev := previousOutputs(olds)
	command, op := in.Update, "update"
	if command == "" {
		command, op = in.Create, "create"
	}
	res := prev
	if command != "" {
		ctx, cancel := p.opContext(ctx, req.GetTimeout())
		defer cancel()
		if res, err = p.run(ctx, resource.URN(req.GetUrn()), in, op, command, &prev); err != nil {
			return nil, err
		}
	}
	out, err := marshal(withOutputs(news, res), "update.outputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: out}, nil
}

// Delete runs `delete` (if set) with the last stdout/stderr in the environment; a failing
// command fails the delete and the resource stays in the state. Deleting a CopyToRemote
// leaves the copied files on the remote host, as upstream's provider does.
func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	typ, err := resourceType(req.GetUrn(), req.GetType())
	if err != nil {
		return nil, err
	}
	if typ == copyToRemoteType {
		return &emptypb.Empty{}, nil
	}
	props, err := unmarshal(req.GetProperties(), "delete.properties")
	if err != nil {
		return nil, err
	}
	in, err := decodeInputs(typ, props)
	if err != nil {
		return nil, err
	}
	if in.Delete != "" {
		prev := previousOutputs(props)
		ctx, cancel := p.opContext(ctx, req.GetTimeout())
		defer cancel()
		if _, err := p.run(ctx, resource.URN(req.GetUrn()), in, "delete", in.Delete, &prev); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// Read (refresh) returns the state unchanged: a command (or a copy) has nothing to read back.
func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{
		Id:         req.GetId(),
		Properties: req.GetProperties(),
		Inputs:     req.GetInputs(),
	}, nil
}

// withOutputs returns the inputs plus the command's stdout and stderr.
func withOutputs(inputs resource.PropertyMap, res runResult) resource.PropertyMap {
	out := inputs.Copy()
	out["stdout"] = resource.NewStringProperty(res.Stdout)
	out["stderr"] = resource.NewStringProperty(res.Stderr)
	return out
}

// previousOutputs reads stdout/stderr from a resource's recorded outputs.
func previousOutputs(outputs resource.PropertyMap) runResult {
	get := func(key resource.PropertyKey) string {
		v := stripSecrets(outputs[key])
		if v.IsString() {
			return v.StringValue()
		}
		return ""
	}
	return runResult{Stdout: get("stdout"), Stderr: get("stderr")}
}

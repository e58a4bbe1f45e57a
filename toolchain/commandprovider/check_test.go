package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/ssh"
)

// testHostKey returns a fresh ed25519 public key in authorized_keys format.
func testHostKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + " test"
}

func failureText(failures []*pulumirpc.CheckFailure) string {
	var parts []string
	for _, f := range failures {
		parts = append(parts, f.Property+" => "+f.Reason)
	}
	return strings.Join(parts, "\n")
}

func TestCheckAppliesDefaults(t *testing.T) {
	inputs, failures := checkInputs(remoteCommandType, resource.PropertyMap{
		"create":     str("echo hi"),
		"connection": secret(obj("host", str("10.0.0.1"), "hostKey", str(testHostKey(t)))),
	})
	if len(failures) > 0 {
		t.Fatalf("unexpected failures:\n%s", failureText(failures))
	}
	if !inputs["addPreviousOutputInEnv"].BoolValue() {
		t.Errorf("addPreviousOutputInEnv default is not true")
	}
	conn := inputs["connection"]
	if !conn.IsSecret() {
		t.Fatalf("connection lost its secret wrapper: %v", conn)
	}
	m := conn.SecretValue().Element.ObjectValue()
	if m["port"].NumberValue() != 22 || m["user"].StringValue() != "root" ||
		m["dialErrorLimit"].NumberValue() != 10 || m["perDialTimeout"].NumberValue() != 15 {
		t.Errorf("connection defaults not applied: %v", m)
	}
	if _, ok := inputs["interpreter"]; ok {
		t.Errorf("interpreter must stay unset (its default applies when the command runs)")
	}
}

func TestCheckKeepsExplicitValues(t *testing.T) {
	inputs, failures := checkInputs(remoteCommandType, resource.PropertyMap{
		"addPreviousOutputInEnv": resource.NewBoolProperty(false),
		"connection": obj("host", str("h"), "port", resource.NewNumberProperty(2222),
			"user", str("debian"), "proxy", obj("host", str("jump"))),
	})
	if len(failures) > 0 {
		t.Fatalf("unexpected failures:\n%s", failureText(failures))
	}
	if inputs["addPreviousOutputInEnv"].BoolValue() {
		t.Errorf("explicit addPreviousOutputInEnv=false was overridden")
	}
	m := inputs["connection"].ObjectValue()
	if m["port"].NumberValue() != 2222 || m["user"].StringValue() != "debian" {
		t.Errorf("explicit connection values overridden: %v", m)
	}
	proxy := m["proxy"].ObjectValue()
	if proxy["port"].NumberValue() != 22 || proxy["user"].StringValue() != "root" {
		t.Errorf("proxy defaults not applied: %v", proxy)
	}
}

func TestCheckPassesUnknowns(t *testing.T) {
	inputs, failures := checkInputs(remoteCommandType, resource.PropertyMap{
		"create":     unknown(),
		"connection": secret(unknown()),
	})
	if len(failures) > 0 {
		t.Fatalf("unexpected failures:\n%s", failureText(failures))
	}
	if !inputs["connection"].ContainsUnknowns() {
		t.Errorf("unknown connection was replaced: %v", inputs["connection"])
	}
}

func TestCheckRejectsBadValues(t *testing.T) {
	cases := []struct {
		typ   string
		props resource.PropertyMap
		want  string // in the failure text
	}{
		{localCommandType, resource.PropertyMap{"create": resource.NewNumberProperty(1)}, "create => create: must be a string"},
		{localCommandType, resource.PropertyMap{"interpreter": str("/bin/sh")}, "interpreter => interpreter: must be a list"},
		{localCommandType, resource.PropertyMap{"interpreter": list()}, "must name a program"},
		{localCommandType, resource.PropertyMap{"environment": obj("A", resource.NewBoolProperty(true))}, "the value of A must be a string"},
		{localCommandType, resource.PropertyMap{"logging": str("loud")}, "must be one of stdout, stderr, stdoutAndStderr, none"},
		{localCommandType, resource.PropertyMap{"addPreviousOutputInEnv": str("yes")}, "must be a boolean"},
		{localCommandType, resource.PropertyMap{"triggers": str("x")}, "triggers: must be a list"},
		{localCommandType, resource.PropertyMap{"assetPaths": list(str("*.txt"))}, "assetPaths: is not supported by this build"},
		{remoteCommandType, resource.PropertyMap{"create": str("x")}, "connection => connection: is required"},
		{remoteCommandType, resource.PropertyMap{"connection": obj("port", resource.NewNumberProperty(22))}, "connection.host: is required"},
		{remoteCommandType, resource.PropertyMap{"connection": obj("host", str("h"), "port", resource.NewNumberProperty(70000))}, "connection.port: must be a whole number"},
		{remoteCommandType, resource.PropertyMap{"connection": secret(obj("host", str("h"), "hostKey", str("not a key")))}, "connection.hostKey: not an SSH public key"},
		{remoteCommandType, resource.PropertyMap{"connection": obj("host", str("h"), "proxy", obj("host", str("j"), "proxy", obj("host", str("k"))))}, "a proxy cannot have a proxy"},
		{remoteCommandType, resource.PropertyMap{"connection": obj("host", str("h")), "environment": obj("BAD-NAME", str("x"))}, `"BAD-NAME" is not a valid shell variable name`},
	}
	for _, tc := range cases {
		_, failures := checkInputs(tc.typ, tc.props)
		if text := failureText(failures); !strings.Contains(text, tc.want) {
			t.Errorf("%v: failures %q do not contain %q", tc.props, text, tc.want)
		}
	}
}

func TestResourceTypes(t *testing.T) {
	if _, err := resourceType("urn:pulumi:s::p::command:remote:Command::x", ""); err != nil {
		t.Errorf("remote Command refused: %v", err)
	}
	if _, err := resourceType("", "command:remote:CopyToRemote"); err != nil {
		t.Errorf("CopyToRemote refused: %v", err)
	}
	_, err := resourceType("", "command:remote:CopyFile")
	if err == nil || !strings.Contains(err.Error(), "not supported by this build") {
		t.Errorf("CopyFile: got %v", err)
	}
}

func TestCheckCopyToRemote(t *testing.T) {
	inputs, failures := checkInputs(copyToRemoteType, resource.PropertyMap{
		"source":     fileAsset(t, "bin/tool", "v1"),
		"remotePath": str("/usr/local/bin/tool"),
		"connection": secret(obj("host", str("10.0.0.1"))),
		"triggers":   list(str("a")),
	})
	if len(failures) > 0 {
		t.Fatalf("unexpected failures:\n%s", failureText(failures))
	}
	if _, ok := inputs["addPreviousOutputInEnv"]; ok {
		t.Errorf("a CopyToRemote has no addPreviousOutputInEnv")
	}
	conn := inputs["connection"]
	if !conn.IsSecret() || conn.SecretValue().Element.ObjectValue()["port"].NumberValue() != 22 {
		t.Errorf("connection not secret or without defaults: %v", conn)
	}
	if !inputs["source"].IsAsset() {
		t.Errorf("source is no longer an asset: %v", inputs["source"])
	}
	_, failures = checkInputs(copyToRemoteType, resource.PropertyMap{
		"source": unknown(), "remotePath": unknown(), "connection": secret(unknown()),
	})
	if len(failures) > 0 {
		t.Errorf("unknowns must pass:\n%s", failureText(failures))
	}
}

func TestCheckCopyToRemoteRejectsBadValues(t *testing.T) {
	conn := obj("host", str("h"))
	remote := &asset.Asset{Sig: asset.AssetSig, URI: "https://example.invalid/x"}
	assets := &archive.Archive{Sig: archive.ArchiveSig, Assets: map[string]any{"a": mustText(t, "x")}}
	dir := &archive.Archive{Sig: archive.ArchiveSig, Path: "some/dir"}
	cases := []struct {
		props resource.PropertyMap
		want  string
	}{
		{resource.PropertyMap{"remotePath": str("/x"), "connection": conn}, "source => source: is required"},
		{resource.PropertyMap{"source": resource.NewAssetProperty(mustText(t, "x")), "connection": conn},
			"remotePath => remotePath: is required"},
		{resource.PropertyMap{"source": resource.NewAssetProperty(mustText(t, "x")), "remotePath": str("/x")},
			"connection => connection: is required"},
		{resource.PropertyMap{"source": resource.NewAssetProperty(mustText(t, "x")), "remotePath": str(""), "connection": conn},
			"remotePath: must not be empty"},
		{resource.PropertyMap{"source": str("/etc/passwd"), "remotePath": str("/x"), "connection": conn},
			"source: must be an asset or an archive"},
		{resource.PropertyMap{"source": resource.NewAssetProperty(remote), "remotePath": str("/x"), "connection": conn},
			"a RemoteAsset (https://example.invalid/x) cannot be copied"},
		{resource.PropertyMap{"source": resource.NewArchiveProperty(assets), "remotePath": str("/x"), "connection": conn},
			"only a FileArchive"},
		{resource.PropertyMap{"source": resource.NewArchiveProperty(dir), "remotePath": str("/x"), "connection": obj("port", resource.NewNumberProperty(22))},
			"connection.host: is required"},
		{resource.PropertyMap{"source": resource.NewArchiveProperty(dir), "remotePath": str("/x"), "connection": conn, "triggers": str("t")},
			"triggers: must be a list"},
	}
	for _, tc := range cases {
		_, failures := checkInputs(copyToRemoteType, tc.props)
		if text := failureText(failures); !strings.Contains(text, tc.want) {
			t.Errorf("%v: failures %q do not contain %q", tc.props, text, tc.want)
		}
	}
}

func TestDecodeCopyInputs(t *testing.T) {
	in, err := decodeCopyInputs(resource.PropertyMap{
		"source":     fileAsset(t, "bin/tool", "v1"),
		"remotePath": str("/usr/local/bin/tool"),
		"connection": secret(obj("host", str("h"), "privateKey", secret(str("KEY")))),
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.Asset == nil || in.Asset.Path != "bin/tool" || in.Archive != nil || in.RemotePath != "/usr/local/bin/tool" {
		t.Errorf("inputs = %+v", in)
	}
	if in.Connection.Host != "h" || in.Connection.PrivateKey != "KEY" || in.Connection.Port != 22 {
		t.Errorf("connection = %+v", in.Connection)
	}
	if _, err := decodeCopyInputs(resource.PropertyMap{"remotePath": str("/x"), "connection": obj("host", str("h"))}); err == nil ||
		!strings.Contains(err.Error(), "source: is required") {
		t.Errorf("missing source: got %v", err)
	}
}

func TestDecodeInputsFromState(t *testing.T) {
	in, err := decodeInputs(remoteCommandType, resource.PropertyMap{
		"create":     str("echo hi"),
		"stdout":     str("hi"),
		"connection": secret(obj("host", str("h"), "privateKey", secret(str("KEY")))),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := in.Connection
	if c.Host != "h" || c.Port != 22 || c.User != "root" || c.PrivateKey != "KEY" || c.DialErrorLimit != 10 {
		t.Errorf("connection = %+v", c)
	}
	if !in.AddPreviousOutputInEnv || in.Logging != "stdoutAndStderr" {
		t.Errorf("defaults: %+v", in)
	}
}

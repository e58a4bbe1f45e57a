package main

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func str(s string) resource.PropertyValue { return resource.NewStringProperty(s) }

func secret(v resource.PropertyValue) resource.PropertyValue { return resource.MakeSecret(v) }

func unknown() resource.PropertyValue {
	return resource.MakeComputed(resource.NewStringProperty(""))
}

func list(items ...resource.PropertyValue) resource.PropertyValue {
	return resource.NewArrayProperty(items)
}

func obj(kv ...any) resource.PropertyValue {
	m := resource.PropertyMap{}
	for i := 0; i < len(kv); i += 2 {
		m[resource.PropertyKey(kv[i].(string))] = kv[i+1].(resource.PropertyValue)
	}
	return resource.NewObjectProperty(m)
}

func baseInputs() resource.PropertyMap {
	return resource.PropertyMap{
		"create":                 str("echo hi"),
		"delete":                 str("echo bye"),
		"environment":            obj("A", str("1")),
		"triggers":               list(str("t1"), resource.NewNumberProperty(1)),
		"addPreviousOutputInEnv": resource.NewBoolProperty(true),
		"connection": secret(obj(
			"host", str("10.0.0.1"), "port", resource.NewNumberProperty(22),
			"privateKey", secret(str("KEY")))),
	}
}

type wantDiff struct {
	changes  pulumirpc.DiffResponse_DiffChanges
	replaces []string
	detailed map[string]pulumirpc.PropertyDiff_Kind
}

func TestDiffClassification(t *testing.T) {
	update, replace := pulumirpc.PropertyDiff_UPDATE, pulumirpc.PropertyDiff_UPDATE_REPLACE
	some, none := pulumirpc.DiffResponse_DIFF_SOME, pulumirpc.DiffResponse_DIFF_NONE
	cases := []struct {
		name   string
		change func(m resource.PropertyMap)
		want   wantDiff
	}{
		{"nothing changed", func(resource.PropertyMap) {}, wantDiff{changes: none}},
		{"create text changed", func(m resource.PropertyMap) { m["create"] = str("echo hello") },
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"create": update}}},
		{"delete changed", func(m resource.PropertyMap) { m["delete"] = str("true") },
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"delete": update}}},
		{"environment value changed", func(m resource.PropertyMap) { m["environment"] = obj("A", str("2")) },
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"environment": update}}},
		{"update added", func(m resource.PropertyMap) { m["update"] = str("echo u") },
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"update": pulumirpc.PropertyDiff_ADD}}},
		{"delete removed", func(m resource.PropertyMap) { delete(m, "delete") },
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"delete": pulumirpc.PropertyDiff_DELETE}}},
		{"null is absent", func(m resource.PropertyMap) { m["stdin"] = resource.NewNullProperty() },
			wantDiff{changes: none}},
		{"logging added", func(m resource.PropertyMap) { m["logging"] = str("none") },
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"logging": pulumirpc.PropertyDiff_ADD}}},
		{"triggers changed", func(m resource.PropertyMap) { m["triggers"] = list(str("t2"), resource.NewNumberProperty(1)) },
			wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{"triggers": replace}}},
		{"triggers added", func(m resource.PropertyMap) { m["triggers"] = list(str("t1"), resource.NewNumberProperty(1), str("x")) },
			wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{"triggers": replace}}},
		{"triggers removed", func(m resource.PropertyMap) { delete(m, "triggers") },
			wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{"triggers": pulumirpc.PropertyDiff_DELETE_REPLACE}}},
		{"connection host changed", func(m resource.PropertyMap) {
			m["connection"] = secret(obj("host", str("10.0.0.2"), "port", resource.NewNumberProperty(22),
				"privateKey", secret(str("KEY"))))
		}, wantDiff{some, []string{"connection"}, map[string]pulumirpc.PropertyDiff_Kind{"connection": replace}}},
		{"same connection without secret wrappers", func(m resource.PropertyMap) {
			m["connection"] = obj("host", str("10.0.0.1"), "port", resource.NewNumberProperty(22),
				"privateKey", str("KEY"))
		}, wantDiff{changes: none}},
		{"unknown create counts as a change", func(m resource.PropertyMap) { m["create"] = unknown() },
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"create": update}}},
		{"unknown inside triggers counts as a change", func(m resource.PropertyMap) { m["triggers"] = list(unknown()) },
			wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{"triggers": replace}}},
		{"unknown secret connection counts as a change", func(m resource.PropertyMap) { m["connection"] = secret(unknown()) },
			wantDiff{some, []string{"connection"}, map[string]pulumirpc.PropertyDiff_Kind{"connection": replace}}},
		{"create and triggers changed", func(m resource.PropertyMap) {
			m["create"] = str("x")
			m["triggers"] = list()
		}, wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{"create": update, "triggers": replace}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			news := baseInputs()
			tc.change(news)
			got := diffInputs(remoteCommandType, baseInputs(), news)
			checkDiff(t, got, tc.want)
		})
	}
}

// The olds may be the recorded outputs: stdout/stderr there are not input changes.
func TestDiffIgnoresOutputs(t *testing.T) {
	olds := baseInputs()
	olds["stdout"] = str("hi")
	olds["stderr"] = str("")
	checkDiff(t, diffInputs(remoteCommandType, olds, baseInputs()), wantDiff{changes: pulumirpc.DiffResponse_DIFF_NONE})
}

// With a non-empty `update` command in the new inputs, a triggers change updates the
// resource (running `update`); without one it replaces it. `connection` always replaces.
func TestDiffTriggersUpdateWhenThereIsAnUpdateCommand(t *testing.T) {
	update, replace := pulumirpc.PropertyDiff_UPDATE, pulumirpc.PropertyDiff_UPDATE_REPLACE
	some := pulumirpc.DiffResponse_DIFF_SOME
	withUpdate := func(m resource.PropertyMap) resource.PropertyMap {
		m["update"] = str("echo update")
		return m
	}
	newTriggers := list(str("t2"))
	newConnection := secret(obj("host", str("10.0.0.9"), "port", resource.NewNumberProperty(22),
		"privateKey", secret(str("KEY"))))
	cases := []struct {
		name       string
		typ        string
		olds, news resource.PropertyMap
		want       wantDiff
	}{
		{"local, update set: triggers update", localCommandType,
			withUpdate(baseInputs()), with(withUpdate(baseInputs()), "triggers", newTriggers),
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"triggers": update}}},
		{"remote, update set: triggers update", remoteCommandType,
			withUpdate(baseInputs()), with(withUpdate(baseInputs()), "triggers", newTriggers),
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"triggers": update}}},
		{"update set: triggers removed updates", remoteCommandType,
			withUpdate(baseInputs()), with(withUpdate(baseInputs()), "triggers", resource.NewNullProperty()),
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"triggers": pulumirpc.PropertyDiff_DELETE}}},
		{"update set as secret: triggers update", localCommandType,
			baseInputs(), with(with(baseInputs(), "update", secret(str("echo u"))), "triggers", newTriggers),
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"update": pulumirpc.PropertyDiff_ADD, "triggers": update}}},
		{"update unknown: triggers update", localCommandType,
			baseInputs(), with(with(baseInputs(), "update", unknown()), "triggers", newTriggers),
			wantDiff{some, nil, map[string]pulumirpc.PropertyDiff_Kind{"update": pulumirpc.PropertyDiff_ADD, "triggers": update}}},
		{"update empty: triggers replace", localCommandType,
			with(baseInputs(), "update", str("")), with(with(baseInputs(), "update", str("")), "triggers", newTriggers),
			wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{"triggers": replace}}},
		{"update only in the olds: triggers replace", localCommandType,
			withUpdate(baseInputs()), with(baseInputs(), "triggers", newTriggers),
			wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{
				"update": pulumirpc.PropertyDiff_DELETE, "triggers": replace}}},
		{"update set: connection still replaces", remoteCommandType,
			withUpdate(baseInputs()), with(withUpdate(baseInputs()), "connection", newConnection),
			wantDiff{some, []string{"connection"}, map[string]pulumirpc.PropertyDiff_Kind{"connection": replace}}},
		{"update set: connection and triggers", remoteCommandType,
			withUpdate(baseInputs()), with(with(withUpdate(baseInputs()), "connection", newConnection), "triggers", newTriggers),
			wantDiff{some, []string{"connection"}, map[string]pulumirpc.PropertyDiff_Kind{"connection": replace, "triggers": update}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkDiff(t, diffInputs(tc.typ, tc.olds, tc.news), tc.want)
		})
	}
}

// with returns m with key set to v (a null v removes the key).
func with(m resource.PropertyMap, key string, v resource.PropertyValue) resource.PropertyMap {
	m = m.Copy()
	if v.IsNull() {
		delete(m, resource.PropertyKey(key))
	} else {
		m[resource.PropertyKey(key)] = v
	}
	return m
}

func fileAsset(t *testing.T, path, content string) resource.PropertyValue {
	t.Helper()
	a, err := asset.FromText(content)
	if err != nil {
		t.Fatal(err)
	}
	return resource.NewAssetProperty(&asset.Asset{Sig: asset.AssetSig, Hash: a.Hash, Path: path})
}

func copyInputsFor(source resource.PropertyValue) resource.PropertyMap {
	return resource.PropertyMap{
		"source":     source,
		"remotePath": str("/opt/bin/tool"),
		"connection": secret(obj("host", str("10.0.0.1"), "port", resource.NewNumberProperty(22))),
	}
}

// Every change of a CopyToRemote replaces it; a source is compared by its content hash.
func TestDiffCopyToRemote(t *testing.T) {
	replace := pulumirpc.PropertyDiff_UPDATE_REPLACE
	some, none := pulumirpc.DiffResponse_DIFF_SOME, pulumirpc.DiffResponse_DIFF_NONE
	old := copyInputsFor(fileAsset(t, "bin/tool", "v1"))
	cases := []struct {
		name string
		news resource.PropertyMap
		want wantDiff
	}{
		{"nothing changed", copyInputsFor(fileAsset(t, "bin/tool", "v1")), wantDiff{changes: none}},
		{"same content at another local path", copyInputsFor(fileAsset(t, "elsewhere/tool", "v1")),
			wantDiff{changes: none}},
		{"content changed", copyInputsFor(fileAsset(t, "bin/tool", "v2")),
			wantDiff{some, []string{"source"}, map[string]pulumirpc.PropertyDiff_Kind{"source": replace}}},
		{"text asset instead", copyInputsFor(resource.NewAssetProperty(mustText(t, "v1"))),
			wantDiff{changes: none}},
		{"remotePath changed", with(old, "remotePath", str("/opt/bin/tool2")),
			wantDiff{some, []string{"remotePath"}, map[string]pulumirpc.PropertyDiff_Kind{"remotePath": replace}}},
		{"triggers added", with(old, "triggers", list(str("x"))),
			wantDiff{some, []string{"triggers"}, map[string]pulumirpc.PropertyDiff_Kind{"triggers": pulumirpc.PropertyDiff_ADD_REPLACE}}},
		{"connection changed", with(old, "connection", obj("host", str("10.0.0.2"))),
			wantDiff{some, []string{"connection"}, map[string]pulumirpc.PropertyDiff_Kind{"connection": replace}}},
		{"unknown source", with(old, "source", unknown()),
			wantDiff{some, []string{"source"}, map[string]pulumirpc.PropertyDiff_Kind{"source": replace}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkDiff(t, diffInputs(copyToRemoteType, old, tc.news), tc.want)
		})
	}
}

func mustText(t *testing.T, text string) *asset.Asset {
	t.Helper()
	a, err := asset.FromText(text)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func checkDiff(t *testing.T, got *pulumirpc.DiffResponse, want wantDiff) {
	t.Helper()
	if got.Changes != want.changes {
		t.Errorf("changes = %v, want %v", got.Changes, want.changes)
	}
	if len(got.Replaces) != len(want.replaces) {
		t.Errorf("replaces = %v, want %v", got.Replaces, want.replaces)
	}
	for i := range want.replaces {
		if i < len(got.Replaces) && got.Replaces[i] != want.replaces[i] {
			t.Errorf("replaces = %v, want %v", got.Replaces, want.replaces)
		}
	}
	if !got.HasDetailedDiff {
		t.Errorf("hasDetailedDiff is false")
	}
	if got.DeleteBeforeReplace {
		t.Errorf("deleteBeforeReplace is true")
	}
	if len(got.DetailedDiff) != len(want.detailed) {
		t.Errorf("detailedDiff = %v, want %v", got.DetailedDiff, want.detailed)
	}
	for key, kind := range want.detailed {
		d, ok := got.DetailedDiff[key]
		if !ok || d.Kind != kind || !d.InputDiff {
			t.Errorf("detailedDiff[%s] = %v, want %v (input diff)", key, d, kind)
		}
	}
	if len(got.Diffs) != len(want.detailed) {
		t.Errorf("diffs = %v, want the keys of %v", got.Diffs, want.detailed)
	}
}

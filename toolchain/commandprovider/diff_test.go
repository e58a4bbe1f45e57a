package main

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
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
			got := diffInputs(baseInputs(), news)
			checkDiff(t, got, tc.want)
		})
	}
}

// The olds may be the recorded outputs: stdout/stderr there are not input changes.
func TestDiffIgnoresOutputs(t *testing.T) {
	olds := baseInputs()
	olds["stdout"] = str("hi")
	olds["stderr"] = str("")
	checkDiff(t, diffInputs(olds, baseInputs()), wantDiff{changes: pulumirpc.DiffResponse_DIFF_NONE})
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

package main

import (
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// replaceRule returns whether a change of the input `key` replaces the resource (true) or
// updates it in place (false), given the new inputs:
//
//   - Command: `connection` always replaces; `triggers` updates when the new inputs have a
//     non-empty `update` command (which then runs), and replaces otherwise (the SDK's
//     documented rule). Every other input updates (runs `update`, or `create` again).
//   - CopyToRemote: every change replaces (the copy is made again).
//
// An `update` that is not known yet (a preview) counts as set: it is a command computed
// from other resources' outputs. The engine diffs again with known values before it acts.
func replaceRule(typ string, news resource.PropertyMap) func(resource.PropertyKey) bool {
	if typ == copyToRemoteType {
		return func(resource.PropertyKey) bool { return true }
	}
	triggersReplace := !hasUpdateCommand(news)
	return func(key resource.PropertyKey) bool {
		return key == "connection" || (key == "triggers" && triggersReplace)
	}
}

// hasUpdateCommand reports whether inputs hold a non-empty (or unknown) `update` command.
func hasUpdateCommand(inputs resource.PropertyMap) bool {
	v := unwrap(inputs["update"])
	switch {
	case v.IsComputed() || v.IsOutput():
		return true
	case v.IsString():
		return v.StringValue() != ""
	default:
		return false
	}
}

// diffInputs compares old inputs (from the state) with new ones of a resource of type typ.
//
// A value that is unknown in the new inputs counts as changed. Secrets are compared by
// their plain values, so wrapping an unchanged value as secret is not a change. Assets and
// archives are compared by their hashes. Outputs (stdout, stderr) are ignored, so the olds
// may be the recorded outputs too.
func diffInputs(typ string, olds, news resource.PropertyMap) *pulumirpc.DiffResponse {
	replaces := replaceRule(typ, news)
	keys := map[resource.PropertyKey]bool{}
	for k := range olds {
		keys[k] = true
	}
	for k := range news {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if !outputKeys[k] {
			sorted = append(sorted, string(k))
		}
	}
	sort.Strings(sorted)

	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_NONE,
		DetailedDiff:    map[string]*pulumirpc.PropertyDiff{},
		HasDetailedDiff: true,
	}
	for _, name := range sorted {
		key := resource.PropertyKey(name)
		kind, changed := compareProperty(olds[key], news[key])
		if !changed {
			continue
		}
		if replaces(key) {
			kind = replaceKind(kind)
			resp.Replaces = append(resp.Replaces, name)
		}
		resp.Diffs = append(resp.Diffs, name)
		resp.DetailedDiff[name] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return resp
}

// compareProperty classifies the change of one property (absent and null are the same).
func compareProperty(old, new resource.PropertyValue) (pulumirpc.PropertyDiff_Kind, bool) {
	hasOld, hasNew := !old.IsNull(), !new.IsNull()
	switch {
	case !hasOld && !hasNew:
		return 0, false
	case !hasOld:
		return pulumirpc.PropertyDiff_ADD, true
	case !hasNew:
		return pulumirpc.PropertyDiff_DELETE, true
	case new.ContainsUnknowns() || old.ContainsUnknowns():
		return pulumirpc.PropertyDiff_UPDATE, true
	case !stripSecrets(old).DeepEquals(stripSecrets(new)):
		return pulumirpc.PropertyDiff_UPDATE, true
	default:
		return 0, false
	}
}

func replaceKind(kind pulumirpc.PropertyDiff_Kind) pulumirpc.PropertyDiff_Kind {
	switch kind {
	case pulumirpc.PropertyDiff_ADD:
		return pulumirpc.PropertyDiff_ADD_REPLACE
	case pulumirpc.PropertyDiff_DELETE:
		return pulumirpc.PropertyDiff_DELETE_REPLACE
	default:
		return pulumirpc.PropertyDiff_UPDATE_REPLACE
	}
}

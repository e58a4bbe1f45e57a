package main

import (
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// replaceKeys are the inputs whose change replaces the resource; a change to any other
// input updates it in place (runs `update`, or `create` again).
var replaceKeys = map[resource.PropertyKey]bool{"triggers": true, "connection": true}

// diffInputs compares old inputs (from the state) with new ones.
//
// A value that is unknown in the new inputs counts as changed. Secrets are compared by
// their plain values, so wrapping an unchanged value as secret is not a change. Outputs
// (stdout, stderr) are ignored, so the olds may be the recorded outputs too.
func diffInputs(olds, news resource.PropertyMap) *pulumirpc.DiffResponse {
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
		if replaceKeys[key] {
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

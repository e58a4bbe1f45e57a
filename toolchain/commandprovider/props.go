package main

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/ssh"
)

// Resource type tokens.
const (
	localCommandType  = "command:local:Command"
	remoteCommandType = "command:remote:Command"
	copyToRemoteType  = "command:remote:CopyToRemote"
)

// servedTypes are the resources this provider implements.
var servedTypes = []string{localCommandType, remoteCommandType, copyToRemoteType}

// unsupportedTypes are resources of the package this provider does not implement.
var unsupportedTypes = []string{"command:remote:CopyFile"}

// Defaults the package schema declares.
const (
	defaultPort           = 22
	defaultUser           = "root"
	defaultDialErrorLimit = 10
	defaultPerDialTimeout = 15
	defaultLogging        = "stdoutAndStderr"
)

var defaultInterpreter = []string{"/bin/sh", "-c"}

var loggingValues = []string{"stdout", "stderr", "stdoutAndStderr", "none"}

type valueKind int

const (
	kindString valueKind = iota
	kindBool
	kindStringList
	kindStringMap
	kindAnyList
	kindConnection
	kindSource // an asset or an archive (CopyToRemote's source)
)

// propSpec describes one input property.
type propSpec struct {
	kind    valueKind
	enum    []string // allowed values of a string
	refused string   // non-empty: a non-empty value is refused with this reason
	// required: Check fails when the input is missing; the text says what it is for
	required string
}

const notSupported = "is not supported by this build of the command provider; " +
	"use the official release of pulumi-resource-command"

var commonProps = map[string]propSpec{
	"create":                 {kind: kindString},
	"update":                 {kind: kindString},
	"delete":                 {kind: kindString},
	"environment":            {kind: kindStringMap},
	"stdin":                  {kind: kindString},
	"triggers":               {kind: kindAnyList},
	"logging":                {kind: kindString, enum: loggingValues},
	"addPreviousOutputInEnv": {kind: kindBool},
}

var localOnlyProps = map[string]propSpec{
	"dir":          {kind: kindString},
	"interpreter":  {kind: kindStringList},
	"assetPaths":   {kind: kindStringList, refused: notSupported},
	"archivePaths": {kind: kindStringList, refused: notSupported},
}

var remoteOnlyProps = map[string]propSpec{
	"connection": {kind: kindConnection, required: "how to reach the remote host (at least its host)"},
}

var copyToRemoteProps = map[string]propSpec{
	"connection": {kind: kindConnection, required: "how to reach the remote host (at least its host)"},
	"source":     {kind: kindSource, required: "the FileAsset, StringAsset or FileArchive to copy"},
	"remotePath": {kind: kindString, required: "the destination path on the remote host"},
	"triggers":   {kind: kindAnyList},
}

// outputKeys are outputs only: they are never compared as inputs.
var outputKeys = map[resource.PropertyKey]bool{"stdout": true, "stderr": true, "assets": true, "archive": true}

// specsFor returns the input properties of a resource type.
func specsFor(typ string) map[string]propSpec {
	if typ == copyToRemoteType {
		return copyToRemoteProps
	}
	specs := map[string]propSpec{}
	for k, v := range commonProps {
		specs[k] = v
	}
	extra := localOnlyProps
	if typ == remoteCommandType {
		extra = remoteOnlyProps
	}
	for k, v := range extra {
		specs[k] = v
	}
	return specs
}

// resourceType returns the type of the resource a request is about, or an error for a type
// this provider does not serve.
func resourceType(urn, typ string) (string, error) {
	if typ == "" && urn != "" {
		typ = string(resource.URN(urn).Type())
	}
	switch {
	case slices.Contains(servedTypes, typ):
		return typ, nil
	case slices.Contains(unsupportedTypes, typ):
		return "", fmt.Errorf("%s %s", typ, notSupported)
	default:
		return "", fmt.Errorf("unknown resource type %q: this provider serves %s",
			typ, strings.Join(servedTypes, ", "))
	}
}

// unwrap removes secret and known-output wrappers.
func unwrap(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput() && v.OutputValue().Known:
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}

// stripSecrets returns the value with every secret wrapper removed, at any depth.
func stripSecrets(v resource.PropertyValue) resource.PropertyValue {
	v = unwrap(v)
	switch {
	case v.IsArray():
		items := make([]resource.PropertyValue, len(v.ArrayValue()))
		for i, item := range v.ArrayValue() {
			items[i] = stripSecrets(item)
		}
		return resource.NewArrayProperty(items)
	case v.IsObject():
		obj := resource.PropertyMap{}
		for k, item := range v.ObjectValue() {
			obj[k] = stripSecrets(item)
		}
		return resource.NewObjectProperty(obj)
	default:
		return v
	}
}

// ---------------------------------------------------------------------------------------
// Check

// checker collects the failures of one Check call.
type checker struct {
	failures []*pulumirpc.CheckFailure
}

func (c *checker) fail(property, format string, args ...any) {
	c.failures = append(c.failures, &pulumirpc.CheckFailure{
		Property: property,
		Reason:   fmt.Sprintf("%s: %s", property, fmt.Sprintf(format, args...)),
	})
}

// checkInputs validates the inputs of a resource type and returns them with defaults applied.
// Unknown values pass; properties the package does not define are kept as they are.
func checkInputs(typ string, news resource.PropertyMap) (resource.PropertyMap, []*pulumirpc.CheckFailure) {
	specs := specsFor(typ)
	c := &checker{}
	inputs := resource.PropertyMap{}
	keys := news.StableKeys()
	for _, key := range keys {
		v := news[key]
		if v.IsNull() {
			continue
		}
		inputs[key] = v
		if spec, ok := specs[string(key)]; ok {
			c.checkValue(typ, string(key), v, spec)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		if why := specs[name].required; why != "" && !inputs.HasValue(resource.PropertyKey(name)) {
			c.fail(name, "is required: %s", why)
		}
	}
	if typ != copyToRemoteType && !inputs.HasValue("addPreviousOutputInEnv") {
		inputs["addPreviousOutputInEnv"] = resource.NewBoolProperty(true)
	}
	if conn, ok := inputs["connection"]; ok && specs["connection"].kind == kindConnection {
		inputs["connection"] = withConnectionDefaults(conn, true)
	}
	return inputs, c.failures
}

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *checker) checkValue(typ, path string, v resource.PropertyValue, spec propSpec) {
	v = unwrap(v)
	if v.IsComputed() || v.IsOutput() {
		return
	}
	switch spec.kind {
	case kindString:
		if !v.IsString() {
			c.fail(path, "must be a string, not %s", v.TypeString())
		} else if spec.required != "" && v.StringValue() == "" {
			c.fail(path, "must not be empty: %s", spec.required)
		} else if spec.enum != nil && !slices.Contains(spec.enum, v.StringValue()) {
			c.fail(path, "must be one of %s, not %q", strings.Join(spec.enum, ", "), v.StringValue())
		}
	case kindBool:
		if !v.IsBool() {
			c.fail(path, "must be a boolean, not %s", v.TypeString())
		}
	case kindStringList:
		c.checkStringList(path, v, spec)
	case kindStringMap:
		c.checkEnvironment(typ, path, v)
	case kindAnyList:
		if !v.IsArray() {
			c.fail(path, "must be a list, not %s", v.TypeString())
		}
	case kindConnection:
		c.checkConnection(path, v, true)
	case kindSource:
		c.checkSource(path, v)
	}
}

func (c *checker) checkStringList(path string, v resource.PropertyValue, spec propSpec) {
	if !v.IsArray() {
		c.fail(path, "must be a list of strings, not %s", v.TypeString())
		return
	}
	for i, item := range v.ArrayValue() {
		item = unwrap(item)
		if !item.IsString() && !item.IsComputed() && !item.IsOutput() {
			c.fail(path, "item %d must be a string, not %s", i, item.TypeString())
		}
	}
	if spec.refused != "" && len(v.ArrayValue()) > 0 {
		c.fail(path, "%s", spec.refused)
	}
	if path == "interpreter" && len(v.ArrayValue()) == 0 {
		c.fail(path, "must name a program (leave it unset for the default %q)", defaultInterpreter)
	}
}

// checkEnvironment checks a map of environment variables. Remote variables become shell
// `export` statements, so their names must be shell identifiers.
func (c *checker) checkEnvironment(typ, path string, v resource.PropertyValue) {
	if !v.IsObject() {
		c.fail(path, "must be a map of strings, not %s", v.TypeString())
		return
	}
	obj := v.ObjectValue()
	for _, key := range obj.StableKeys() {
		name := string(key)
		switch {
		case typ == remoteCommandType && !envNameRe.MatchString(name):
			c.fail(path, "%q is not a valid shell variable name (letters, digits and _, "+
				"not starting with a digit); remote variables are set with `export`", name)
		case name == "" || strings.ContainsAny(name, "=\x00"):
			c.fail(path, "%q is not a valid environment variable name", name)
		}
		item := unwrap(obj[key])
		switch {
		case item.IsComputed() || item.IsOutput():
		case !item.IsString():
			c.fail(path, "the value of %s must be a string, not %s", name, item.TypeString())
		case strings.ContainsRune(item.StringValue(), 0):
			c.fail(path, "the value of %s contains a NUL byte", name)
		}
	}
}

// connField describes a field of `connection`: a string, or a whole number in [min, max].
type connField struct {
	number   bool
	min, max float64
}

var connectionFields = map[string]connField{
	"host":               {},
	"user":               {},
	"password":           {},
	"privateKey":         {},
	"privateKeyPassword": {},
	"hostKey":            {},
	"agentSocketPath":    {},
	"port":               {number: true, min: 1, max: 65535},
	"dialErrorLimit":     {number: true, min: -1, max: math.MaxInt32},
	"perDialTimeout":     {number: true, min: 0, max: math.MaxInt32},
}

func (c *checker) checkConnection(path string, v resource.PropertyValue, allowProxy bool) {
	if !v.IsObject() {
		c.fail(path, "must be an object, not %s", v.TypeString())
		return
	}
	obj := v.ObjectValue()
	if host, ok := obj["host"]; !ok || host.IsNull() {
		c.fail(path+".host", "is required")
	}
	for _, key := range obj.StableKeys() {
		name := string(key)
		item := unwrap(obj[key])
		if item.IsNull() || item.IsComputed() || item.IsOutput() {
			continue
		}
		if name == "proxy" {
			if !allowProxy {
				c.fail(path+".proxy", "a proxy cannot have a proxy of its own")
			} else {
				c.checkConnection(path+".proxy", item, false)
			}
			continue
		}
		field, known := connectionFields[name]
		switch {
		case !known:
		case field.number:
			if !item.IsNumber() {
				c.fail(path+"."+name, "must be a number, not %s", item.TypeString())
			} else if n := item.NumberValue(); n != math.Trunc(n) || n < field.min || n > field.max {
				c.fail(path+"."+name, "must be a whole number from %v to %v, not %v", field.min, field.max, n)
			}
		case !item.IsString():
			c.fail(path+"."+name, "must be a string, not %s", item.TypeString())
		case name == "hostKey" && item.StringValue() != "":
			if _, err := parseHostKey(item.StringValue()); err != nil {
				c.fail(path+".hostKey", "%v", err)
			}
		case name == "host" && item.StringValue() == "":
			c.fail(path+".host", "must not be empty")
		}
	}
}

// withConnectionDefaults fills in port, user, dialErrorLimit and perDialTimeout (and the
// same in `proxy`), keeping the value secret if it was.
func withConnectionDefaults(v resource.PropertyValue, allowProxy bool) resource.PropertyValue {
	if v.IsSecret() {
		return resource.MakeSecret(withConnectionDefaults(v.SecretValue().Element, allowProxy))
	}
	if !v.IsObject() {
		return v
	}
	obj := v.ObjectValue().Copy()
	setDefault := func(key resource.PropertyKey, value resource.PropertyValue) {
		if !obj.HasValue(key) {
			obj[key] = value
		}
	}
	setDefault("port", resource.NewNumberProperty(defaultPort))
	setDefault("user", resource.NewStringProperty(defaultUser))
	setDefault("dialErrorLimit", resource.NewNumberProperty(defaultDialErrorLimit))
	setDefault("perDialTimeout", resource.NewNumberProperty(defaultPerDialTimeout))
	if proxy, ok := obj["proxy"]; ok && allowProxy && !proxy.IsNull() {
		obj["proxy"] = withConnectionDefaults(proxy, false)
	}
	return resource.NewObjectProperty(obj)
}

// parseHostKey parses an expected host key in authorized_keys format
// ("ssh-ed25519 AAAA... comment").
func parseHostKey(text string) (ssh.PublicKey, error) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("not an SSH public key in authorized_keys format "+
			"(\"ssh-ed25519 AAAA... comment\"): %v", err)
	}
	return key, nil
}

// ---------------------------------------------------------------------------------------
// Decoded inputs

// commandInputs are the known, plain (secrets removed) inputs of a resource.
type commandInputs struct {
	Type                   string
	Create, Update, Delete string
	Dir                    string
	Environment            map[string]string
	Interpreter            []string
	Stdin                  *string
	Logging                string
	AddPreviousOutputInEnv bool
	Connection             *connection // remote only
}

// connection says how to reach a remote host (and, optionally, the jump host in between).
type connection struct {
	Host               string
	Port               int
	User               string
	Password           string
	PrivateKey         string
	PrivateKeyPassword string
	HostKey            string
	AgentSocketPath    string
	DialErrorLimit     int
	PerDialTimeout     int
	Proxy              *connection
}

// decoder reads typed values out of a plain property map, remembering the first error.
type decoder struct {
	where string
	err   error
}

func (d *decoder) fail(key, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s%s: %s", d.where, key, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) value(m resource.PropertyMap, key string) (resource.PropertyValue, bool) {
	v, ok := m[resource.PropertyKey(key)]
	if !ok || v.IsNull() {
		return v, false
	}
	if v.IsComputed() || v.IsOutput() {
		d.fail(key, "is not known yet")
		return v, false
	}
	return v, true
}

func (d *decoder) str(m resource.PropertyMap, key, def string) string {
	v, ok := d.value(m, key)
	if !ok {
		return def
	}
	if !v.IsString() {
		d.fail(key, "must be a string, not %s", v.TypeString())
		return def
	}
	return v.StringValue()
}

func (d *decoder) optStr(m resource.PropertyMap, key string) *string {
	if _, ok := d.value(m, key); !ok {
		return nil
	}
	s := d.str(m, key, "")
	return &s
}

func (d *decoder) boolean(m resource.PropertyMap, key string, def bool) bool {
	v, ok := d.value(m, key)
	if !ok {
		return def
	}
	if !v.IsBool() {
		d.fail(key, "must be a boolean, not %s", v.TypeString())
		return def
	}
	return v.BoolValue()
}

func (d *decoder) integer(m resource.PropertyMap, key string, def int) int {
	v, ok := d.value(m, key)
	if !ok {
		return def
	}
	if !v.IsNumber() || v.NumberValue() != math.Trunc(v.NumberValue()) {
		d.fail(key, "must be a whole number, not %v", v)
		return def
	}
	return int(v.NumberValue())
}

func (d *decoder) strings(m resource.PropertyMap, key string) []string {
	v, ok := d.value(m, key)
	if !ok {
		return nil
	}
	if !v.IsArray() {
		d.fail(key, "must be a list of strings, not %s", v.TypeString())
		return nil
	}
	out := make([]string, 0, len(v.ArrayValue()))
	for _, item := range v.ArrayValue() {
		if !item.IsString() {
			d.fail(key, "must be a list of strings")
			return nil
		}
		out = append(out, item.StringValue())
	}
	return out
}

func (d *decoder) stringMap(m resource.PropertyMap, key string) map[string]string {
	v, ok := d.value(m, key)
	if !ok {
		return nil
	}
	if !v.IsObject() {
		d.fail(key, "must be a map of strings, not %s", v.TypeString())
		return nil
	}
	out := map[string]string{}
	for k, item := range v.ObjectValue() {
		if !item.IsString() {
			d.fail(key, "the value of %s must be a string", k)
			return nil
		}
		out[string(k)] = item.StringValue()
	}
	return out
}

// decodeInputs turns (checked, known) properties into commandInputs, applying defaults
// again so that state written without them works too.
func decodeInputs(typ string, props resource.PropertyMap) (*commandInputs, error) {
	plain := stripSecrets(resource.NewObjectProperty(props)).ObjectValue()
	d := &decoder{}
	in := &commandInputs{
		Type:                   typ,
		Create:                 d.str(plain, "create", ""),
		Update:                 d.str(plain, "update", ""),
		Delete:                 d.str(plain, "delete", ""),
		Environment:            d.stringMap(plain, "environment"),
		Stdin:                  d.optStr(plain, "stdin"),
		Logging:                d.str(plain, "logging", defaultLogging),
		AddPreviousOutputInEnv: d.boolean(plain, "addPreviousOutputInEnv", true),
	}
	if !slices.Contains(loggingValues, in.Logging) {
		d.fail("logging", "must be one of %s, not %q", strings.Join(loggingValues, ", "), in.Logging)
	}
	switch typ {
	case localCommandType:
		in.Dir = d.str(plain, "dir", "")
		in.Interpreter = d.strings(plain, "interpreter")
		if len(in.Interpreter) == 0 {
			in.Interpreter = slices.Clone(defaultInterpreter)
		}
		for _, key := range []string{"assetPaths", "archivePaths"} {
			if len(d.strings(plain, key)) > 0 {
				d.fail(key, "%s", notSupported)
			}
		}
	case remoteCommandType:
		in.Connection = decodeRequiredConnection(d, plain)
	}
	if d.err != nil {
		return nil, d.err
	}
	return in, nil
}

// decodeRequiredConnection decodes the `connection` input of a remote resource.
func decodeRequiredConnection(d *decoder, plain resource.PropertyMap) *connection {
	v, ok := d.value(plain, "connection")
	switch {
	case !ok && d.err == nil:
		d.fail("connection", "is required")
	case ok && !v.IsObject():
		d.fail("connection", "must be an object, not %s", v.TypeString())
	case ok:
		return decodeConnection(d, v.ObjectValue(), "connection.", true)
	}
	return nil
}

func decodeConnection(d *decoder, m resource.PropertyMap, prefix string, allowProxy bool) *connection {
	outer := d.where
	d.where = prefix
	defer func() { d.where = outer }()
	c := &connection{
		Host:               d.str(m, "host", ""),
		Port:               d.integer(m, "port", defaultPort),
		User:               d.str(m, "user", defaultUser),
		Password:           d.str(m, "password", ""),
		PrivateKey:         d.str(m, "privateKey", ""),
		PrivateKeyPassword: d.str(m, "privateKeyPassword", ""),
		HostKey:            d.str(m, "hostKey", ""),
		AgentSocketPath:    d.str(m, "agentSocketPath", ""),
		DialErrorLimit:     d.integer(m, "dialErrorLimit", defaultDialErrorLimit),
		PerDialTimeout:     d.integer(m, "perDialTimeout", defaultPerDialTimeout),
	}
	if c.Host == "" {
		d.fail("host", "is required")
	}
	if c.Port < 1 || c.Port > 65535 {
		d.fail("port", "must be from 1 to 65535, not %d", c.Port)
	}
	if v, ok := d.value(m, "proxy"); ok && allowProxy {
		if !v.IsObject() {
			d.fail("proxy", "must be an object, not %s", v.TypeString())
		} else {
			c.Proxy = decodeConnection(d, v.ObjectValue(), prefix+"proxy.", false)
		}
	}
	return c
}

// sortedKeys returns a map's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

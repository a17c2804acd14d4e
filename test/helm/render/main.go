// helm-render: a small stand-in for `helm template`, built by the chart tests
// from Debian's Go and Go libraries (GOPATH mode, no module proxy). It renders
// a chart the way Helm 3 does: Go text/template with sprig's functions plus
// what Helm adds (include, tpl, required, fail, toYaml, fromYaml,
// fromYamlArray, toJson, fromJson, lookup, .Capabilities, .Files), values
// merged like Helm (chart values, then each -f file; null deletes a key), the
// chart's kubeVersion checked against -kube-version, and values
// validated against values.schema.json with gojsonschema, as Helm does.
//
//	helm-render -chart DIR [-f values.yaml ...] [-name RELEASE] [-namespace NS]
//	            [-kube-version v1.29.0] [-api-versions a/v1,b/v1]
//
// Prints JSON {"manifests": {"templates/x.yaml": "..."}, "notes": "..."};
// on an error prints it to stderr and exits 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
	"github.com/xeipuuv/gojsonschema"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// Chart metadata as templates see it (.Chart.Name, .Chart.Version, ...).
type chartMeta struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
	Description string `json:"description"`
	Type        string `json:"type"`
	KubeVersion string `json:"kubeVersion"`
	APIVersion  string `json:"apiVersion"`
}

type kubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k kubeVersion) String() string { return k.Version }

type apiVersions []string

// Has reports whether a group/version (or group/version/Kind) is available, as Helm's .Capabilities.APIVersions.Has.
func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

type capabilities struct {
	KubeVersion kubeVersion
	APIVersions apiVersions
	HelmVersion map[string]string
}

// files gives templates the chart's non-template files (.Files.Get), as Helm does.
type files map[string][]byte

func (f files) Get(name string) string      { return string(f[name]) }
func (f files) GetBytes(name string) []byte { return f[name] }
func (f files) Glob(pattern string) files {
	out := files{}
	for k, v := range f {
		if ok, _ := path.Match(pattern, k); ok {
			out[k] = v
		}
	}
	return out
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", a...)
	os.Exit(1)
}

func readYAMLMap(file string) map[string]interface{} {
	data, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		fail("cannot parse %s: %v", file, err)
	}
	if out == nil {
		out = map[string]interface{}{}
	}
	return out
}

// coalesce merges src over dst like Helm: maps recursively, a null in src deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = coalesce(dm, sm)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

func validateSchema(chartDir string, chartName string, values map[string]interface{}) error {
	schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	doc, err := json.Marshal(values)
	if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(doc))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if res.Valid() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n", chartName)
	for _, e := range res.Errors() {
		fmt.Fprintf(&b, "- %s\n", e)
	}
	return errors.New(b.String())
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kube := flag.String("kube-version", "v1.29.0", "Kubernetes version for .Capabilities")
	apis := flag.String("api-versions", "", "comma-separated extra API versions for .Capabilities.APIVersions")
	var vfiles valueFiles
	flag.Var(&vfiles, "f", "values file (repeatable)")
	flag.Parse()
	if *chartDir == "" {
		fail("-chart is required")
	}

	var meta chartMeta
	chartYAML, err := os.ReadFile(filepath.Join(*chartDir, "Chart.yaml"))
	if err != nil {
		fail("%v", err)
	}
	if err := yaml.Unmarshal(chartYAML, &meta); err != nil {
		fail("Chart.yaml: %v", err)
	}

	values := readYAMLMap(filepath.Join(*chartDir, "values.yaml"))
	for _, f := range vfiles {
		values = coalesce(values, readYAMLMap(f))
	}
	if err := validateSchema(*chartDir, meta.Name, values); err != nil {
		fail("%v", err)
	}

	kv := strings.TrimPrefix(*kube, "v")
	parts := strings.SplitN(kv, ".", 3)
	if len(parts) < 2 {
		fail("-kube-version must look like v1.29.0")
	}
	// Like Helm: the chart's kubeVersion constraint must admit the target Kubernetes.
	if meta.KubeVersion != "" {
		c, err := semver.NewConstraint(meta.KubeVersion)
		if err != nil {
			fail("Chart.yaml kubeVersion %q: %v", meta.KubeVersion, err)
		}
		v, err := semver.NewVersion(kv)
		if err != nil {
			fail("-kube-version %q: %v", *kube, err)
		}
		if !c.Check(v) {
			fail("chart requires kubeVersion: %s which is incompatible with Kubernetes v%s", meta.KubeVersion, kv)
		}
	}
	versions := apiVersions{"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1"}
	for _, a := range strings.Split(*apis, ",") {
		if a != "" {
			versions = append(versions, a)
		}
	}
	caps := capabilities{
		KubeVersion: kubeVersion{Version: "v" + kv, Major: parts[0], Minor: parts[1], GitVersion: "v" + kv},
		APIVersions: versions,
		HelmVersion: map[string]string{"Version": "v3-stand-in"},
	}

	// Non-template files for .Files, minus what .helmignore excludes (simple patterns only).
	ignore := []string{}
	if data, err := os.ReadFile(filepath.Join(*chartDir, ".helmignore")); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSpace(l)
			if l != "" && !strings.HasPrefix(l, "#") {
				ignore = append(ignore, l)
			}
		}
	}
	chartFiles := files{}
	templateSources := map[string]string{}
	walkErr := filepath.Walk(*chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(*chartDir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			return nil
		}
		for _, pat := range ignore {
			if ok, _ := path.Match(strings.TrimSuffix(pat, "/"), path.Base(rel)); ok {
				return nil
			}
			if ok, _ := path.Match(strings.TrimSuffix(pat, "/"), rel); ok {
				return nil
			}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			templateSources[meta.Name+"/"+rel] = string(data)
		} else {
			chartFiles[rel] = data
		}
		return nil
	})
	if walkErr != nil {
		fail("%v", walkErr)
	}

	t := template.New("gotpl")
	// Helm renders missing keys as empty, then strips "<no value>".
	t.Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includedNames := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if includedNames[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includedNames[name]++
		defer func() { includedNames[name]-- }()
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		nt, err := c.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := nt.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["fromYamlArray"] = fromYAMLArray
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	// Like `helm template`: no cluster, so lookup finds nothing.
	funcs["lookup"] = func(apiVersion, kind, ns, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	t.Funcs(funcs)

	names := make([]string, 0, len(templateSources))
	for n := range templateSources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := t.New(n).Parse(templateSources[n]); err != nil {
			fail("parse error in %v", err)
		}
	}

	release := map[string]interface{}{"Name": *name, "Namespace": *namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1}
	chart := map[string]interface{}{"Name": meta.Name, "Version": meta.Version, "AppVersion": meta.AppVersion, "Description": meta.Description, "Type": meta.Type, "KubeVersion": meta.KubeVersion, "APIVersion": meta.APIVersion}
	out := struct {
		Manifests map[string]string `json:"manifests"`
		Notes     string            `json:"notes"`
	}{Manifests: map[string]string{}}
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		data := map[string]interface{}{
			"Values":       values,
			"Release":      release,
			"Chart":        chart,
			"Capabilities": caps,
			"Files":        chartFiles,
			"Template":     map[string]interface{}{"Name": n, "BasePath": meta.Name + "/templates"},
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, n, data); err != nil {
			fail("%v", err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		rel := strings.TrimPrefix(n, meta.Name+"/")
		if base == "NOTES.txt" {
			out.Notes = text
		} else {
			out.Manifests[rel] = text
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}

// Prints the KubeletConfiguration (kubelet.config.k8s.io/v1beta1) of the k8s.io/kubelet module
// this program is built with, as JSON: every field by its JSON name, its type, and whether its
// doc comment says it is deprecated. Types come from reflection over the real Go types; the
// deprecation notes from the package's source (its directory is the first argument).
package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	kubeletconfig "k8s.io/kubelet/config/v1beta1"
)

type field struct {
	Type       string            `json:"type"`
	Properties map[string]*field `json:"properties,omitempty"`
	Items      *field            `json:"items,omitempty"`
	Values     *field            `json:"values,omitempty"`
	Deprecated bool              `json:"deprecated,omitempty"`
}

var named = map[string]string{
	"k8s.io/apimachinery/pkg/apis/meta/v1.Duration":  "duration",
	"k8s.io/apimachinery/pkg/api/resource.Quantity":  "quantity",
	"k8s.io/apimachinery/pkg/util/intstr.IntOrString": "intOrString",
}

var deprecated = map[string]bool{} // "Struct.Field"

func readDeprecations(dir string) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, nil, parser.ParseComments)
	if err != nil {
		panic(err)
	}
	for _, pkg := range pkgs {
		for _, file := range pkg.Files {
			ast.Inspect(file, func(n ast.Node) bool {
				spec, ok := n.(*ast.TypeSpec)
				if !ok {
					return true
				}
				st, ok := spec.Type.(*ast.StructType)
				if !ok {
					return true
				}
				for _, f := range st.Fields.List {
					if f.Doc != nil && strings.Contains(f.Doc.Text(), "Deprecated") {
						for _, name := range f.Names {
							deprecated[spec.Name.Name+"."+name.Name] = true
						}
					}
				}
				return true
			})
		}
	}
}

func describe(t reflect.Type) *field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if kind, ok := named[t.PkgPath()+"."+t.Name()]; ok {
		return &field{Type: kind}
	}
	switch t.Kind() {
	case reflect.Bool:
		return &field{Type: "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &field{Type: "integer"}
	case reflect.Float32, reflect.Float64:
		return &field{Type: "number"}
	case reflect.String:
		return &field{Type: "string"}
	case reflect.Slice, reflect.Array:
		return &field{Type: "array", Items: describe(t.Elem())}
	case reflect.Map:
		return &field{Type: "map", Values: describe(t.Elem())}
	case reflect.Struct:
		out := &field{Type: "object", Properties: map[string]*field{}}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("json"), ",")
			if tag[0] == "-" || !f.IsExported() {
				continue
			}
			if f.Anonymous && (tag[0] == "" || strings.Contains(f.Tag.Get("json"), "inline")) {
				for k, v := range describe(f.Type).Properties {
					out.Properties[k] = v
				}
				continue
			}
			name := tag[0]
			if name == "" {
				name = f.Name
			}
			d := describe(f.Type)
			d.Deprecated = deprecated[t.Name()+"."+f.Name]
			out.Properties[name] = d
		}
		return out
	}
	panic(fmt.Sprintf("unhandled type %s", t))
}

// goNames maps each top-level Go field name to its JSON name (what the kubelet's flags bind to).
func goNames(t reflect.Type) map[string]string {
	names := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			names[f.Name] = tag
		}
	}
	return names
}

func main() {
	readDeprecations(filepath.Join(os.Args[1], "config", "v1beta1"))
	t := reflect.TypeOf(kubeletconfig.KubeletConfiguration{})
	out, err := json.MarshalIndent(map[string]any{"schema": describe(t), "goNames": goNames(t)}, "", " ")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
}

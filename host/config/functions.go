package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/trellis-mesh/trellis/host/internal/regfile"
)

// MaxReadFile is the largest file the config's file() function reads: it
// is meant for secrets and small values, not for data.
const MaxReadFile = 64 << 10

// maxEnvName bounds the name env() is given.
const maxEnvName = 256

// evalContext is what the config's expressions are evaluated with: two
// functions that keep secrets out of the file itself.
//
//	token  = env("TRELLIS_ADMIN_TOKEN")              # an environment variable, which must be set
//	config = { tokens = file("secret/api-tokens") }  # a file's content, relative to the config
//
// file() reads a regular file of at most MaxReadFile bytes and drops the
// line breaks that end it; each file it reads is recorded in d.files, so
// that the config is watched, and applied again, when one changes (a
// Kubernetes Secret rotated, say). Both refuse with the file and line of
// the call when they cannot give a value.
func (d *decoder) evalContext() *hcl.EvalContext {
	return &hcl.EvalContext{Functions: map[string]function.Function{
		"env": stringFunction("The value of an environment variable, which must be set.", "name",
			func(name string) (string, error) {
				if name == "" || len(name) > maxEnvName || strings.ContainsAny(name, "=\x00") {
					return "", fmt.Errorf("%.64q is not an environment variable's name", name)
				}
				v, ok := os.LookupEnv(name)
				if !ok {
					return "", fmt.Errorf("environment variable %s is not set", name)
				}
				return v, nil
			}),
		"file": stringFunction("The content of a file (relative to the config), without its final line break.", "path",
			func(p string) (string, error) {
				if p == "" || strings.ContainsRune(p, 0) {
					return "", fmt.Errorf("%.64q is not a path", p)
				}
				p = d.path(p)
				b, err := regfile.Read(p, MaxReadFile, "config.MaxReadFile")
				if err != nil {
					return "", err
				}
				d.files = append(d.files, p)
				return strings.TrimRight(string(b), "\r\n"), nil
			}),
	}}
}

// stringFunction is an HCL function of one string argument, named param,
// that returns a string or an error.
func stringFunction(description, param string, impl func(string) (string, error)) function.Function {
	return function.New(&function.Spec{
		Description: description,
		Params:      []function.Parameter{{Name: param, Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := impl(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(v), nil
		},
	})
}

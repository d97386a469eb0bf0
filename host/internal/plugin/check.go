package plugin

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/interrupt"
)

// ErrABIVersion is wrapped by the load error of a plugin built for another
// ABI version than this host's.
var ErrABIVersion = errors.New("unsupported ABI version")

// ErrNotPlugin is wrapped by the load error of a module that does not
// declare any Trellis ABI version.
var ErrNotPlugin = errors.New("not a Trellis plugin")

// ErrBadModule is wrapped by load errors about a module's shape: a missing
// or mistyped export, an import the host does not provide.
var ErrBadModule = errors.New("module does not fit the ABI")

var (
	i32       = api.ValueTypeI32
	sigHandle = sig{params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}}
	sigInit   = sig{results: []api.ValueType{i32}}
	sigResp   = sig{params: []api.ValueType{i32, i32, i32}, results: []api.ValueType{i32}}
	sigVoid   = sig{}
)

type sig struct{ params, results []api.ValueType }

func (s sig) String() string {
	return fmt.Sprintf("(%s) -> (%s)", typeList(s.params), typeList(s.results))
}

func typeList(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ", ")
}

func sigOf(d api.FunctionDefinition) sig {
	return sig{params: d.ParamTypes(), results: d.ResultTypes()}
}

func (s sig) equal(o sig) bool {
	return typeList(s.params) == typeList(o.params) && typeList(s.results) == typeList(o.results)
}

// check reads the compiled module's imports and exports, without running
// it, and says precisely what does not fit ABI v1.
func (p *Plugin) check() error {
	exports := p.compiled.ExportedFunctions()

	var versions []int
	for name := range exports {
		if v, ok := strings.CutPrefix(name, abi.ExportVersionPrefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%w: export %q is not a version marker (want %s<number>)",
					ErrBadModule, name, abi.ExportVersionPrefix)
			}
			versions = append(versions, n)
		}
	}
	sort.Ints(versions)
	switch {
	case len(versions) == 0:
		return fmt.Errorf("%w: it does not export %s (is it built with a Trellis SDK?)",
			ErrNotPlugin, abi.ExportVersion)
	case len(versions) > 1:
		return fmt.Errorf("%w: it declares several ABI versions %v; export exactly one", ErrABIVersion, versions)
	case versions[0] != abi.Version:
		return fmt.Errorf("%w: built for Trellis ABI v%d; this host supports v%d",
			ErrABIVersion, versions[0], abi.Version)
	}

	if _, ok := exports[abi.ExportStart]; ok {
		return fmt.Errorf("%w: it exports _start, so it is a WASI command that exits after main; "+
			"build it as a reactor (Go: -buildmode=c-shared, C: -mexec-model=reactor)", ErrBadModule)
	}
	if _, ok := p.compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		return fmt.Errorf("%w: it does not export its memory as %q", ErrBadModule, abi.ExportMemory)
	}
	want := []struct {
		name     string
		sig      sig
		required bool
	}{
		{abi.ExportVersion, sigVoid, true},
		{abi.ExportHandle, sigHandle, false},
		{abi.ExportPolicy, sigHandle, false},
		{abi.ExportPolicyResponse, sigResp, false},
		{abi.ExportInit, sigInit, false},
		{abi.ExportInitialize, sigVoid, false},
	}
	for _, w := range want {
		d, ok := exports[w.name]
		if !ok {
			if w.required {
				return fmt.Errorf("%w: missing export %s %s", ErrBadModule, w.name, w.sig)
			}
			continue
		}
		if got := sigOf(d); !got.equal(w.sig) {
			return fmt.Errorf("%w: export %s has type %s, want %s", ErrBadModule, w.name, got, w.sig)
		}
	}
	_, p.hasHandle = exports[abi.ExportHandle]
	_, p.hasPolicy = exports[abi.ExportPolicy]
	_, p.hasResponse = exports[abi.ExportPolicyResponse]
	if !p.hasHandle && !p.hasPolicy {
		return fmt.Errorf("%w: missing export %s %s (a handler) or %s (a policy)",
			ErrBadModule, abi.ExportHandle, sigHandle, abi.ExportPolicy)
	}
	_, p.hasInit = exports[abi.ExportInit]
	_, p.hasStart = exports[abi.ExportInitialize]

	for _, d := range p.compiled.ImportedMemories() {
		mod, name, _ := d.Import()
		return fmt.Errorf("%w: it imports memory %s.%s; a plugin must define and export its own memory",
			ErrBadModule, mod, name)
	}
	for _, d := range p.compiled.ImportedFunctions() {
		mod, name, _ := d.Import()
		if p.interruptible && mod == interrupt.ImportModule && name == interrupt.ImportName {
			continue // added by the host, not the plugin's
		}
		provider := p.rt.Module(mod)
		if provider == nil || (mod != abi.ImportModule && mod != "wasi_snapshot_preview1") {
			return fmt.Errorf("%w: it imports %s.%s, but the host provides only modules %q and %q",
				ErrBadModule, mod, name, abi.ImportModule, "wasi_snapshot_preview1")
		}
		have, ok := provider.ExportedFunctionDefinitions()[name]
		if !ok {
			return fmt.Errorf("%w: it imports %s.%s, which this host does not provide (ABI v%d)",
				ErrBadModule, mod, name, abi.Version)
		}
		if got, want := sigOf(d), sigOf(have); !got.equal(want) {
			return fmt.Errorf("%w: it imports %s.%s with type %s; the host's has type %s",
				ErrBadModule, mod, name, got, want)
		}
	}
	return nil
}

package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

type packageJSON struct {
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
	Scripts         map[string]string `json:"scripts"`
}

// readPackage reads dir/package.json; ok is false when there is none or it
// does not depend on assemblyscript.
func readPackage(dir string) (pkg packageJSON, exists, ok bool) {
	b, err := readSource(filepath.Join(dir, "package.json"))
	if err != nil {
		return pkg, false, false
	}
	if json.Unmarshal(b, &pkg) != nil {
		return pkg, true, false
	}
	_, dep := pkg.Dependencies["assemblyscript"]
	_, dev := pkg.DevDependencies["assemblyscript"]
	return pkg, true, dep || dev
}

type asconfigJSON struct {
	Entries []string                   `json:"entries"`
	Targets map[string]json.RawMessage `json:"targets"`
}

// reexportsHandle matches an entry file that exports the ABI's handler from
// an export list, as every SDK plugin does:
// export { trellis_abi_v1, trellis_init, trellis_handle } from "@trellis-mesh/sdk".
// Comments are removed first: the SDK's own documentation shows the line.
var (
	reexportsHandle = regexp.MustCompile(`export\s*\{[^}]*\btrellis_handle\b`)
	tsComment       = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)
)

func isPluginEntry(path string) bool {
	b, err := readSource(path)
	return err == nil && reexportsHandle.Match(tsComment.ReplaceAll(b, nil))
}

// inspectAS finds an AssemblyScript plugin in dir (see Detect); nil, nil
// when dir is not AssemblyScript at all.
func inspectAS(dir string) (*source, error) {
	pkg, hasPackage, dependsOnAS := readPackage(dir)
	cfgBytes, cfgErr := readSource(filepath.Join(dir, "asconfig.json"))
	hasConfig := cfgErr == nil
	if !hasConfig && !dependsOnAS {
		if hasPackage {
			return nil, nil // some other npm package
		}
		return inspectASNested(dir)
	}
	s := &source{lang: AssemblyScript, dir: dir, asconfig: hasConfig}
	if hasConfig {
		var cfg asconfigJSON
		if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
			return nil, notPlugin(dir, AssemblyScript, "asconfig.json: %v", err)
		}
		_, s.release = cfg.Targets["release"]
		if len(cfg.Entries) > 0 {
			s.entry = cfg.Entries[0]
		}
	}
	if s.entry == "" {
		s.entry = ascEntry(pkg.Scripts["build"])
	}
	if s.entry == "" {
		for _, e := range []string{filepath.Join("assembly", "index.ts"), "index.ts"} {
			p := filepath.Join(dir, e)
			if (hasConfig && e != "index.ts" && fileExists(p)) || isPluginEntry(p) {
				s.entry = e
				break
			}
		}
	}
	if s.entry == "" {
		return nil, notPlugin(dir, AssemblyScript, "AssemblyScript package with no plugin entry; name it in asconfig.json \"entries\" "+
			"or a \"build\": \"asc <entry>.ts\" script, or re-export trellis_handle from assembly/index.ts")
	}
	if !fileExists(filepath.Join(dir, s.entry)) {
		return nil, notPlugin(dir, AssemblyScript, "AssemblyScript entry %s does not exist", s.entry)
	}
	return s, nil
}

// inspectASNested finds a directory of AssemblyScript sources with no
// package of its own, inside a package that depends on assemblyscript: its
// index.ts is the entry, and the package's compiler builds it.
func inspectASNested(dir string) (*source, error) {
	if !isPluginEntry(filepath.Join(dir, "index.ts")) {
		return nil, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		if _, exists, ok := readPackage(p); ok {
			rel, err := filepath.Rel(p, filepath.Join(abs, "index.ts"))
			if err != nil {
				return nil, nil
			}
			return &source{lang: AssemblyScript, dir: p, entry: rel}, nil
		} else if exists || fileExists(filepath.Join(p, "go.mod")) || fileExists(filepath.Join(p, ".git")) {
			return nil, nil // the nearest package is not AssemblyScript, or we left the project
		}
		if filepath.Dir(p) == p {
			return nil, nil
		}
	}
}

// ascEntry returns the first .ts argument of asc in an npm script.
func ascEntry(script string) string {
	fields := strings.Fields(script)
	for i, f := range fields {
		if f != "asc" && !strings.HasSuffix(f, "/asc") {
			continue
		}
		for _, arg := range fields[i+1:] {
			if arg == "&&" || arg == ";" || arg == "|" {
				return ""
			}
			if strings.HasSuffix(arg, ".ts") && !strings.HasPrefix(arg, "-") {
				return arg
			}
		}
	}
	return ""
}

// npmLocks serialises npm ci in one package directory.
var npmLocks sync.Map // abs dir -> *sync.Mutex

func buildAS(ctx context.Context, s *source, out string) error {
	asc, err := findAsc(ctx, s.dir)
	if err != nil {
		return err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return &ToolchainError{Lang: AssemblyScript, Tool: "node", Install: installAS}
	}
	args := []string{asc, s.entry}
	if s.asconfig {
		// asconfig.json holds the options (runtime, optimisation); -o
		// overrides the target's outFile.
		if s.release {
			args = append(args, "--target", "release")
		}
	} else {
		// The SDK's recommended options: a collector that keeps memory
		// bounded over many messages, and no env.abort import.
		args = append(args, "-O3", "--runtime", "incremental", "--use", "abort=")
	}
	args = append(args, "-o", out)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = s.dir
	_, err = run(cmd, "asc")
	return err
}

// findAsc returns the AssemblyScript compiler that the package at dir
// resolves (its node_modules or an ancestor's, as node does), running
// npm ci (npm install without a package-lock.json) first when there is none.
func findAsc(ctx context.Context, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if p := findUp(abs, filepath.Join("node_modules", "assemblyscript", "bin", "asc.js")); p != "" {
		return p, nil
	}
	if !fileExists(filepath.Join(abs, "package.json")) {
		return "", fmt.Errorf("%s has no AssemblyScript compiler and no package.json to install one from; run: npm install --save-dev assemblyscript", dir)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", &ToolchainError{Lang: AssemblyScript, Tool: "npm", Install: installAS}
	}
	mu, _ := npmLocks.LoadOrStore(abs, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	asc := filepath.Join(abs, "node_modules", "assemblyscript", "bin", "asc.js")
	if fileExists(asc) { // installed while we waited
		return asc, nil
	}
	verb := "install"
	if fileExists(filepath.Join(abs, "package-lock.json")) {
		verb = "ci"
	}
	// --prefer-offline: the npm cache serves what it has, so a machine that
	// installed the SDK once builds new plugins without the registry.
	cmd := exec.CommandContext(ctx, npm, verb, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = abs
	if _, err := run(cmd, "npm "+verb); err != nil {
		return "", err
	}
	if !fileExists(asc) {
		return "", fmt.Errorf("npm %s in %s did not install assemblyscript; add it: npm install --save-dev assemblyscript", verb, dir)
	}
	return asc, nil
}

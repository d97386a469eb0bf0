package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/trellis-mesh/trellis/abi"
)

// version is set at release time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version `go install ...@VERSION` records is used.
var version = ""

// components are the modules whose versions `trellis version` prints, by
// the name it prints them under.
var components = []struct{ name, module string }{
	{"wazero", "github.com/tetratelabs/wazero"},
	{"nats-server", "github.com/nats-io/nats-server/v2"},
	{"nats.go", "github.com/nats-io/nats.go"},
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "Usage: trellis version\n\nPrints the versions of trellis, the plugin ABI, the Go toolchain that built it,\nand the wazero and nats-server it embeds.", stderr)
	if _, err := parse(fs, args); err != nil {
		return flagExit(err)
	}
	v, goVersion := version, "unknown"
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			deps[d.Path] = d.Version
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	fmt.Fprintf(stdout, "trellis %s\n", v)
	fmt.Fprintf(stdout, "  %-12s v%d\n", "plugin ABI", abi.Version)
	for _, c := range components {
		dv := deps[c.module]
		if dv == "" {
			dv = "unknown"
		}
		fmt.Fprintf(stdout, "  %-12s %s\n", c.name, dv)
	}
	fmt.Fprintf(stdout, "  %-12s %s\n", "go", goVersion)
	return 0
}

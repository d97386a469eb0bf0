module github.com/trellis-mesh/trellis/sdk/go

go 1.24

require github.com/trellis-mesh/trellis/abi v0.0.0

// The abi module of this repository; a plugin's go.mod repeats this line,
// since only the main module's replace directives apply.
replace github.com/trellis-mesh/trellis/abi => ../../abi

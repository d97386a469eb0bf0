module github.com/trellis-mesh/trellis/abi

go 1.24

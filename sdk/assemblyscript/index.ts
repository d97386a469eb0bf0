// Package entry for `import ... from "@trellis-mesh/sdk"`: the AssemblyScript
// compiler resolves a package import to <package>/index.ts.
export * from "./assembly/index";

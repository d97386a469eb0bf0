// Package deploy is what an operator deploys Trellis with: Containerfile
// builds the image (a static trellis binary and the plugins the manifests
// serve), build-plugins.sh builds those plugins, and kubernetes/ holds the
// manifests (see kubernetes/README.md). Its test decodes every manifest
// strictly with the Kubernetes API types and checks that they, the config
// they mount and the image agree with one another, so that a typo fails CI.
package deploy

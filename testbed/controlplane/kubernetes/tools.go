//go:build tools

// Package kubernetes only pins the commands the test bed builds (see go.mod).
package kubernetes

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)

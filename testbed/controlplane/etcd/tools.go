//go:build tools

// Package etcd only pins the command the test bed builds (see go.mod).
package etcd

import (
	_ "go.etcd.io/etcd/server/v3"
)

//! A real Kubernetes control plane for the tests — etcd, kube-apiserver and
//! kube-controller-manager built from Go modules and run on loopback. Test infrastructure, not a
//! product.
//!
//! Modules: `release` (pinned versions, the generated Go module), `go` (the Go toolchain),
//! `build` (cached `go build`), `pki` (certificates and the service-account key), `process`
//! (children that die with their owner), `server` (start, stop, restart, compaction).
pub mod build;
pub mod go;
pub mod pki;
pub mod process;
pub mod release;
pub mod server;

pub use build::{Binaries, build, target_dir};
pub use release::{ETCD_VERSION, KUBERNETES_VERSION, KUBERNETES_VERSION_ENV, Release};
pub use server::{ControlPlane, Options};

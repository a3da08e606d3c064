//! The test bed (test infrastructure, not a product): `controlplane` (a real Kubernetes control
//! plane built from Go modules), `harness` (the Rust tests' handle on it), `proxy` (connection
//! faults between a client and the apiserver) and `azure` (the Azure emulator).
pub mod azure;
pub mod controlplane;
pub mod harness;
pub mod proxy;

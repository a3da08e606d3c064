//! The test bed (test infrastructure, not a product): `controlplane` (a real Kubernetes control
//! plane built from Go modules), `harness` (the Rust tests' handle on it), `proxy` (connection
//! faults between a client and the apiserver) and `azure` (the Azure emulator).
pub mod azure;
pub mod controlplane;
pub mod harness;
pub mod proxy;

/// Make ring the process's rustls crypto provider (once), for every HTTPS client the test bed
/// or a test builds (reqwest is built without a provider of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain reqwest client (after making sure a crypto provider is installed).
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

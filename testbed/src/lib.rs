pub mod azure;
pub mod kube;

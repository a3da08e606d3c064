pub mod kube; pub mod azure;

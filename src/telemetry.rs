//! Logging setup: tracing with env-filter (RUST_LOG), text or JSON output.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Install the global subscriber once; later calls are no-ops (tests call it repeatedly).
pub fn init(json: bool, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let res = if json {
        registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init()
    } else {
        registry.with(fmt::layer().compact()).try_init()
    };
    let _ = res;
}

//! Prometheus metrics (prometheus-client): reconciles and their duration, errors by reason,
//! Azure requests by operation and status code, throttling, operations in flight, write queue depth.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub azure_requests: Family<RequestLabels, Counter>,
    pub azure_throttled: Family<OperationLabels, Counter>,
    pub azure_writes: Family<OperationLabels, Counter>,
    pub operations_in_flight: Gauge,
    pub write_queue_depth: Gauge,
    pub accounts_write_busy: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aoai");
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let azure_requests = Family::<RequestLabels, Counter>::default();
        let azure_throttled = Family::<OperationLabels, Counter>::default();
        let azure_writes = Family::<OperationLabels, Counter>::default();
        let operations_in_flight = Gauge::default();
        let write_queue_depth = Gauge::default();
        let accounts_write_busy = Gauge::default();
        registry.register("reconciles", "Reconciliations by kind", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconciliation duration by kind",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliation errors by kind and reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "azure_requests",
            "Azure REST requests by operation and HTTP status code",
            azure_requests.clone(),
        );
        registry.register(
            "azure_throttled",
            "Azure requests answered 429 (throttled) by operation",
            azure_throttled.clone(),
        );
        registry.register(
            "azure_writes",
            "Azure writes (PUT/PATCH/DELETE/actions, Key Vault sets) by operation",
            azure_writes.clone(),
        );
        registry.register(
            "azure_operations_in_flight",
            "Azure long-running operations the operator is polling",
            operations_in_flight.clone(),
        );
        registry.register(
            "account_write_queue_depth",
            "Reconciles waiting for their account's write slot",
            write_queue_depth.clone(),
        );
        registry.register(
            "accounts_write_busy",
            "Accounts with a write (incl. its long-running operation) in flight",
            accounts_write_busy.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            reconcile_errors,
            azure_requests,
            azure_throttled,
            azure_writes,
            operations_in_flight,
            write_queue_depth,
            accounts_write_busy,
        }
    }

    pub fn reconciled(&self, kind: &str, took: Duration) {
        let l = KindLabels { kind: kind.into() };
        self.reconciles.get_or_create(&l).inc();
        self.reconcile_duration
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    pub fn reconcile_failed(&self, kind: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn azure_request(&self, operation: &str, status: u16, write: bool) {
        let status = if status == 0 {
            "error".to_string()
        } else {
            status.to_string()
        };
        self.azure_requests
            .get_or_create(&RequestLabels {
                operation: operation.into(),
                status: status.clone(),
            })
            .inc();
        if status == "429" {
            self.azure_throttled
                .get_or_create(&OperationLabels {
                    operation: operation.into(),
                })
                .inc();
        }
        if write {
            self.azure_writes
                .get_or_create(&OperationLabels {
                    operation: operation.into(),
                })
                .inc();
        }
    }

    /// Sum of azure_requests for operations matching `pred` (tests and benchmarks).
    pub fn azure_request_count(&self, pred: impl Fn(&str) -> bool) -> u64 {
        let text = self.encode();
        text.lines()
            .filter(|l| l.starts_with("aoai_azure_requests_total{"))
            .filter(|l| {
                l.split("operation=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .is_some_and(&pred)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode");
        out
    }
}

//! The benchmark's output contract (issues 6 and 11): a small run prints every judged figure, one
//! `name: value` per line, each judged value a number. (The figures themselves are not
//! asserted: performance claims come from real runs, not from tests.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

const JUDGED: [&str; 15] = [
    "converge_seconds",
    "serialization_bound_seconds",
    "write_budget_bound_seconds",
    "bound_seconds",
    "converge_ratio",
    "throttled_responses",
    "first_call_latency_trickle_p50_ms",
    "first_call_latency_trickle_p99_ms",
    "first_call_latency_burst_p99_ms",
    "azure_calls_ratio",
    "steady_writes",
    "steady_reads_per_deployment_per_resync",
    "rss_peak_mib",
    "first_call_latency_p50_ms",
    "first_call_latency_p99_ms",
];

#[test]
fn a_small_run_prints_every_judged_figure_as_name_value_lines() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_aoai-bench"));
    let operator = bench.with_file_name("aoai-operator");
    assert!(
        operator.exists(),
        "{} not built: run the workspace's tests (cargo xtask test) so the operator binary is built too",
        operator.display()
    );
    let out = Command::new(&bench)
        .args(["--operator-bin", operator.to_str().unwrap()])
        .args([
            "--deployments",
            "12",
            "--accounts",
            "3",
            "--provisioning-ms",
            "20",
        ])
        .args([
            "--large",
            "0",
            "--resyncs",
            "1",
            "--resync-secs",
            "2",
            "--trickle",
            "2",
        ])
        .args(["--subscriptions", "2"])
        .args(["--timeout-secs", "240"])
        .output()
        .expect("run aoai-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aoai-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = stdout
        .split_once("---- aoai-bench results ----\n")
        .expect("results header")
        .1;
    let mut figures = HashMap::new();
    for line in body.lines() {
        let (name, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("not a `name: value` line: {line:?}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in {line:?}"
        );
        assert!(
            figures
                .insert(name.to_string(), value.to_string())
                .is_none(),
            "{name} printed twice"
        );
    }
    for name in JUDGED {
        let v = figures
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from:\n{body}"));
        let x: f64 = v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"));
        assert!(x.is_finite() && x >= 0.0, "{name}: {v}");
    }
    assert_eq!(figures["deployments"], "12");
    assert_eq!(
        figures["serialization_bound_seconds"], "0.080",
        "4 per account × 20 ms"
    );
    assert_eq!(figures["max_concurrent_writes_per_account"], "1");
    assert_eq!(figures["subscriptions"], "2");
    assert_eq!(figures["trickle_deployments"], "2");
    // 12 writes fit any subscription's write bucket: the bound is the serialization bound.
    assert_eq!(figures["bound_seconds"], "0.080");
}

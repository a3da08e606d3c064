//! Measuring the operator process and printing figures: CPU seconds and RSS from /proc, the
//! machine, percentiles, the `name: value` output, and the operator's Kubernetes writes from the
//! apiserver's audit log.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The operator's Kubernetes writes (create/update/patch/delete by its ServiceAccount), read
/// from the apiserver's audit log between two marks (byte offsets of the log).
pub struct KubeWrites {
    pub path: PathBuf,
    pub user: String,
}

impl KubeWrites {
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The operator's writes (create, update, patch, delete) answered between two marks.
    pub fn between(&self, from: u64, to: u64) -> usize {
        writes(&self.by_kind(from, to))
    }

    /// The operator's requests between two marks per (verb, resource[/subresource]).
    pub fn by_kind(&self, from: u64, to: u64) -> BTreeMap<(String, String), usize> {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let (from, to) = (from as usize, (to as usize).min(bytes.len()));
        let mut kinds = BTreeMap::new();
        for e in String::from_utf8_lossy(&bytes[from.min(to)..to])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                e["stage"] == "ResponseComplete" && e["user"]["username"] == self.user.as_str()
            })
        {
            let o = &e["objectRef"];
            let mut resource = o["resource"].as_str().unwrap_or("-").to_string();
            if let Some(sub) = o["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            let verb = e["verb"].as_str().unwrap_or_default().to_string();
            *kinds.entry((verb, resource)).or_default() += 1;
        }
        kinds
    }
}

/// The writes among requests counted by [`KubeWrites::by_kind`].
pub fn writes(kinds: &BTreeMap<(String, String), usize>) -> usize {
    kinds
        .iter()
        .filter(|((verb, _), _)| {
            matches!(
                verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
        })
        .map(|(_, n)| n)
        .sum()
}

/// CPU seconds the whole machine has been busy (all cores: user, nice, system, irq, softirq,
/// steal), from the first line of /proc/stat.
pub fn machine_busy_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<f64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| f.get(i))
        .sum::<f64>();
    Some(busy / 100.0)
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// (VmHWM, VmRSS) in MiB of a process.
pub fn rss(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn machine() -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        ("machine_cpus".into(), cpus.to_string()),
        ("machine_mem_mib".into(), mem.to_string()),
        ("machine_cpu_model".into(), model.replace(':', " ")),
        ("machine_loadavg_at_start".into(), load),
    ]
}

pub struct Out(pub Vec<(String, String)>);

impl Out {
    pub fn put(&mut self, k: &str, v: impl std::fmt::Display) {
        let line = format!("{k}: {v}");
        eprintln!("  {line}");
        self.0.push((k.to_string(), v.to_string()));
    }
    pub fn f(&mut self, k: &str, v: f64) {
        self.put(k, format!("{v:.3}"));
    }
    pub fn print(&self) {
        for (k, v) in &self.0 {
            println!("{k}: {v}");
        }
    }
}

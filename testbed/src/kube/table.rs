//! `as=Table` responses: the Name column, a CRD's `additionalPrinterColumns` (JSONPath),
//! human ages; rows carry PartialObjectMetadata (or the object with includeObject=Object).
use serde_json::{Value, json};

use super::registry::{Builtin, ResourceType};

/// kube's duration.HumanDuration.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rs = s % 60;
        return if rs == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rs}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rm = m % 60;
        return if rm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rm}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let rh = h % 24;
        let d = h / 24;
        return if rh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rh}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    let y = h / 24 / 365;
    if y < 8 {
        let rd = (h / 24) % 365;
        return if rd == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{rd}d")
        };
    }
    format!("{y}y")
}

pub fn age(ts: &str) -> Value {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => json!(human_duration(
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()
        )),
        Err(_) => json!("<unknown>"),
    }
}

/// Minimal JSONPath (the subset printer columns use): `.a.b`, `[0]`, `[*]`, `['k']`, `[?(@.a=="x")]`.
pub fn jsonpath(root: &Value, expr: &str) -> Vec<Value> {
    let mut expr = expr.trim();
    if let Some(e) = expr.strip_prefix('{').and_then(|e| e.strip_suffix('}')) {
        expr = e;
    }
    let expr = expr.strip_prefix('$').unwrap_or(expr);
    let mut cur = vec![root.clone()];
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                let key = &expr[start..j];
                if !key.is_empty() {
                    cur = cur
                        .iter()
                        .filter_map(|v| {
                            if key == "*" {
                                None
                            } else {
                                v.get(key).cloned()
                            }
                        })
                        .collect();
                }
                i = j;
            }
            b'[' => {
                let Some(end_rel) = find_close(&expr[i..]) else {
                    return vec![];
                };
                let inner = &expr[i + 1..i + end_rel];
                cur = apply_bracket(&cur, inner);
                i += end_rel + 1;
            }
            _ => {
                i += 1;
            }
        }
    }
    cur
}

fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn apply_bracket(cur: &[Value], inner: &str) -> Vec<Value> {
    let inner = inner.trim();
    if inner == "*" {
        return cur
            .iter()
            .flat_map(|v| match v {
                Value::Array(a) => a.clone(),
                Value::Object(m) => m.values().cloned().collect(),
                _ => vec![],
            })
            .collect();
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let (lhs, op, rhs) = if let Some((l, r)) = f.split_once("==") {
            (l.trim(), "==", r.trim())
        } else if let Some((l, r)) = f.split_once("!=") {
            (l.trim(), "!=", r.trim())
        } else {
            (f.trim(), "exists", "")
        };
        let want: Value =
            serde_json::from_str(rhs).unwrap_or_else(|_| json!(rhs.trim_matches('\'')));
        let path = lhs.strip_prefix('@').unwrap_or(lhs);
        return cur
            .iter()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .filter(|item| {
                let got = jsonpath(item, path);
                match op {
                    "==" => got.first() == Some(&want),
                    "!=" => got.first() != Some(&want),
                    _ => !got.is_empty(),
                }
            })
            .collect();
    }
    if let Ok(n) = inner.parse::<i64>() {
        return cur
            .iter()
            .filter_map(|v| {
                let a = v.as_array()?;
                let idx = if n < 0 { a.len() as i64 + n } else { n };
                a.get(idx as usize).cloned()
            })
            .collect();
    }
    let key = inner.trim_matches('\'').trim_matches('"');
    cur.iter().filter_map(|v| v.get(key).cloned()).collect()
}

struct Col {
    name: String,
    typ: String,
    format: String,
    description: String,
    priority: i64,
    path: Option<String>,
}

fn columns(rt: &ResourceType) -> Vec<Col> {
    let c = |name: &str, typ: &str, path: Option<&str>| Col {
        name: name.into(),
        typ: typ.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: String::new(),
        priority: 0,
        path: path.map(String::from),
    };
    let mut cols = vec![Col {
        description: "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names".into(),
        ..c("Name", "string", None)
    }];
    if let Some(crd) = &rt.crd {
        if crd.printer_columns.is_empty() {
            cols.push(c("Age", "date", Some(".metadata.creationTimestamp")));
        } else {
            for pc in &crd.printer_columns {
                cols.push(Col {
                    name: pc["name"].as_str().unwrap_or("").into(),
                    typ: pc["type"].as_str().unwrap_or("string").into(),
                    format: pc["format"].as_str().unwrap_or("").into(),
                    description: pc["description"].as_str().unwrap_or("").into(),
                    priority: pc["priority"].as_i64().unwrap_or(0),
                    path: Some(pc["jsonPath"].as_str().unwrap_or("").into()),
                });
            }
        }
        return cols;
    }
    match rt.builtin {
        Some(Builtin::Namespace) => cols.push(c("Status", "string", Some(".status.phase"))),
        Some(Builtin::Secret) => cols.push(c("Type", "string", Some(".type"))),
        Some(Builtin::Deployment) => {
            cols.push(c("Up-to-date", "integer", Some(".status.updatedReplicas")));
            cols.push(c("Available", "integer", Some(".status.availableReplicas")));
        }
        Some(Builtin::Service) => {
            cols.push(c("Type", "string", Some(".spec.type")));
            cols.push(c("Cluster-IP", "string", Some(".spec.clusterIP")));
        }
        Some(Builtin::Lease) => cols.push(c("Holder", "string", Some(".spec.holderIdentity"))),
        Some(Builtin::Crd) => {
            cols.push(c("Created At", "date", Some(".metadata.creationTimestamp")))
        }
        _ => {}
    }
    if rt.builtin != Some(Builtin::Crd) {
        cols.push(c("Age", "date", Some(".metadata.creationTimestamp")));
    }
    cols
}

fn cell(obj: &Value, col: &Col) -> Value {
    if col.name == "Name" && col.path.is_none() {
        return obj
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null);
    }
    let vals = jsonpath(obj, col.path.as_deref().unwrap_or(""));
    let Some(first) = vals.first() else {
        return Value::Null;
    };
    match col.typ.as_str() {
        "date" => first.as_str().map(age).unwrap_or(Value::Null),
        "integer" | "number" | "boolean" => first.clone(),
        _ => {
            if vals.len() > 1 {
                json!(
                    vals.iter()
                        .map(|v| v
                            .as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string()))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            } else {
                match first {
                    Value::String(_) => first.clone(),
                    other => json!(other.to_string()),
                }
            }
        }
    }
}

pub fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

pub fn table(rt: &ResourceType, items: &[Value], list_meta: Value, include: &str) -> Value {
    let cols = columns(rt);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| json!({"name": c.name, "type": c.typ, "format": c.format, "description": c.description, "priority": c.priority}))
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cols.iter().map(|c| cell(o, c)).collect::<Vec<_>>()});
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => row["object"] = partial(o),
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}

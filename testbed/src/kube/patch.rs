//! PATCH bodies: JSON patch (kube-apiserver semantics: `test` of a missing path equals null),
//! JSON merge patch (RFC 7386) and strategic merge patch for the built-in kinds.
use serde_json::{Map, Value};

use super::error::ApiError;

fn patch_err(msg: impl Into<String>) -> ApiError {
    ApiError::new(422, "Invalid", msg)
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| patch_err(format!("invalid JSON pointer: {path:?}")))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn get_path<'a>(doc: &'a Value, toks: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    toks: &[String],
    op: &str,
    path: &str,
) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in &toks[..toks.len() - 1] {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            patch_err(format!(
                "{op} operation does not apply: doc is missing path: \"{path}\": missing value"
            ))
        })?;
    }
    Ok(cur)
}

fn add_at(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), ApiError> {
    let toks = split_pointer(path)?;
    let op = if replace { "replace" } else { "add" };
    if toks.is_empty() {
        *doc = value;
        return Ok(());
    }
    let last = toks.last().unwrap().clone();
    let parent = parent_mut(doc, &toks, op, path)?;
    match parent {
        Value::Object(m) => {
            if replace && !m.contains_key(&last) {
                return Err(patch_err(format!(
                    "replace operation does not apply: doc is missing key: {path}: missing value"
                )));
            }
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| {
                    patch_err(format!(
                        "{op} operation does not apply: invalid index {last:?}"
                    ))
                })?;
                if replace {
                    if i >= a.len() {
                        return Err(patch_err(format!(
                            "replace operation does not apply: doc is missing key: {path}"
                        )));
                    }
                    a[i] = value;
                } else {
                    if i > a.len() {
                        return Err(patch_err(format!(
                            "add operation does not apply: index out of bounds: {i}"
                        )));
                    }
                    a.insert(i, value);
                }
            }
        }
        _ => {
            return Err(patch_err(format!(
                "{op} operation does not apply: doc is missing path: \"{path}\""
            )));
        }
    }
    Ok(())
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let toks = split_pointer(path)?;
    if toks.is_empty() {
        return Err(patch_err(
            "remove operation does not apply: cannot remove the root",
        ));
    }
    let last = toks.last().unwrap().clone();
    let parent = parent_mut(doc, &toks, "remove", path)?;
    let missing = || {
        patch_err(format!(
            "remove operation does not apply: doc is missing path: \"{path}\": missing value"
        ))
    };
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 JSON patch with kube-apiserver (evanphx/json-patch) semantics.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = patch.as_array().ok_or_else(|| {
        ApiError::bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    })?;
    let mut doc = doc.clone();
    for op in ops {
        let kind = op.get("op").and_then(|v| v.as_str()).unwrap_or("");
        let path = op.get("path").and_then(|v| v.as_str()).unwrap_or("");
        match kind {
            "add" => add_at(
                &mut doc,
                path,
                op.get("value").cloned().unwrap_or(Value::Null),
                false,
            )?,
            "replace" => add_at(
                &mut doc,
                path,
                op.get("value").cloned().unwrap_or(Value::Null),
                true,
            )?,
            "remove" => {
                remove_at(&mut doc, path)?;
            }
            "test" => {
                let toks = split_pointer(path)?;
                let actual = get_path(&doc, &toks).cloned().unwrap_or(Value::Null);
                let expected = op.get("value").cloned().unwrap_or(Value::Null);
                if actual != expected {
                    return Err(patch_err(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            "move" | "copy" => {
                let from = op.get("from").and_then(|v| v.as_str()).unwrap_or("");
                let v = if kind == "move" {
                    remove_at(&mut doc, from)?
                } else {
                    get_path(&doc, &split_pointer(from)?)
                        .cloned()
                        .ok_or_else(|| {
                            patch_err(format!(
                                "copy operation does not apply: doc is missing from path: {from}"
                            ))
                        })?
                };
                add_at(&mut doc, path, v, false)?;
            }
            other => return Err(patch_err(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match doc {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Merge key of a list field of the built-in kinds (by field name and item shape).
pub fn builtin_merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "secrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Primitive lists the built-in kinds merge (set semantics) under strategic merge patch.
pub fn builtin_primitive_merge(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch for the built-in kinds (merge keys by field name).
pub fn strategic_merge(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => Ok(Value::Object(smp_map(d, p)?)),
        (_, Value::Object(p)) => Ok(Value::Object(smp_map(&Map::new(), p)?)),
        (_, other) => Ok(other.clone()),
    }
}

fn smp_map(
    doc: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    match patch.get("$patch").and_then(|v| v.as_str()) {
        Some("replace") => {
            let mut p = patch.clone();
            p.remove("$patch");
            return Ok(p);
        }
        Some("delete") => return Ok(Map::new()),
        _ => {}
    }
    let mut out = doc.clone();
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(|v| v.as_str()).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if k.starts_with('$') && !k.contains('/') {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            let _ = field;
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (out.get_mut(field), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), v) {
            (Some(Value::Object(d)), Value::Object(p)) => Value::Object(smp_map(d, p)?),
            (None, Value::Object(p)) => Value::Object(smp_map(&Map::new(), p)?),
            (Some(Value::Array(d)), Value::Array(p)) => smp_list(k, d, p)?,
            (None, Value::Array(p)) => smp_list(k, &[], p)?,
            (_, other) => other.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Ok(out)
}

fn smp_list(field: &str, doc: &[Value], patch: &[Value]) -> Result<Value, ApiError> {
    if builtin_primitive_merge(field) {
        let mut out = doc.to_vec();
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    let Some(key) = builtin_merge_key(field, patch.first().or(doc.first())) else {
        return Ok(Value::Array(
            patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    };
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(|v| v.as_str()) == Some("replace"))
    {
        return Ok(Value::Array(
            patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    let mut out: Vec<Value> = doc.to_vec();
    for p in patch {
        let Some(pm) = p.as_object() else { continue };
        let kv = pm.get(key);
        let pos = out.iter().position(|d| d.get(key) == kv && kv.is_some());
        if pm.get("$patch").and_then(|v| v.as_str()) == Some("delete") {
            if let Some(i) = pos {
                out.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => {
                let merged = smp_map(out[i].as_object().unwrap_or(&Map::new()), pm)?;
                out[i] = Value::Object(merged);
            }
            None => out.push(Value::Object(smp_map(&Map::new(), pm)?)),
        }
    }
    Ok(Value::Array(out))
}

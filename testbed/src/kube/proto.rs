//! Just enough Kubernetes protobuf to read the review requests kubectl sends as
//! `application/vnd.kubernetes.protobuf` (SelfSubjectAccessReview, SelfSubjectRulesReview,
//! SubjectAccessReview); everything else must be JSON or YAML.
use serde_json::{Map, Value, json};

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut x = 0u64;
    let mut shift = 0;
    while *i < b.len() {
        let c = b[*i];
        *i += 1;
        x |= ((c & 0x7f) as u64) << shift;
        if c & 0x80 == 0 {
            return Some(x);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    None
}

/// Fields of one message: (field number, wire value: Left = varint, Right = bytes).
fn fields(b: &[u8]) -> Option<Vec<(u64, Result<u64, Vec<u8>>)>> {
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wt) = (key >> 3, key & 7);
        match wt {
            0 => out.push((num, Ok(varint(b, &mut i)?))),
            2 => {
                let len = varint(b, &mut i)? as usize;
                let end = i.checked_add(len).filter(|e| *e <= b.len())?;
                out.push((num, Err(b[i..end].to_vec())));
                i = end;
            }
            1 => i += 8,
            5 => i += 4,
            _ => return None,
        }
    }
    Some(out)
}

fn strings(b: &[u8], names: &[(u64, &str)]) -> Map<String, Value> {
    let mut m = Map::new();
    for (num, v) in fields(b).unwrap_or_default() {
        if let (Some((_, name)), Err(bytes)) = (names.iter().find(|(n, _)| *n == num), v) {
            m.insert(name.to_string(), json!(String::from_utf8_lossy(&bytes)));
        }
    }
    m
}

fn resource_attributes(b: &[u8]) -> Value {
    Value::Object(strings(
        b,
        &[
            (1, "namespace"),
            (2, "verb"),
            (3, "group"),
            (4, "version"),
            (5, "resource"),
            (6, "subresource"),
            (7, "name"),
        ],
    ))
}

/// Decode a protobuf-encoded authorization review into its JSON form.
pub fn decode_review(body: &[u8]) -> Option<Value> {
    let raw = body.strip_prefix(b"k8s\x00")?;
    let unknown = fields(raw)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut payload = vec![];
    for (num, v) in unknown {
        match (num, v) {
            (1, Err(tm)) => {
                let m = strings(&tm, &[(1, "apiVersion"), (2, "kind")]);
                api_version = m
                    .get("apiVersion")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .into();
                kind = m.get("kind").and_then(|v| v.as_str()).unwrap_or("").into();
            }
            (2, Err(p)) => payload = p,
            _ => {}
        }
    }
    let mut spec = Map::new();
    for (num, v) in fields(&payload)? {
        if num != 2 {
            continue;
        }
        let Err(spec_bytes) = v else { continue };
        for (snum, sv) in fields(&spec_bytes)? {
            match (kind.as_str(), snum, sv) {
                (_, 1, Err(b)) if kind != "SelfSubjectRulesReview" => {
                    spec.insert("resourceAttributes".into(), resource_attributes(&b));
                }
                (_, 2, Err(b)) if kind != "SelfSubjectRulesReview" => {
                    spec.insert(
                        "nonResourceAttributes".into(),
                        Value::Object(strings(&b, &[(1, "path"), (2, "verb")])),
                    );
                }
                ("SelfSubjectRulesReview", 1, Err(b)) => {
                    spec.insert("namespace".into(), json!(String::from_utf8_lossy(&b)));
                }
                ("SubjectAccessReview", 3, Err(b)) => {
                    spec.insert("user".into(), json!(String::from_utf8_lossy(&b)));
                }
                ("SubjectAccessReview", 4, Err(b)) => {
                    let groups = spec.entry("groups").or_insert_with(|| json!([]));
                    if let Some(a) = groups.as_array_mut() {
                        a.push(json!(String::from_utf8_lossy(&b)));
                    }
                }
                _ => {}
            }
        }
    }
    Some(json!({"apiVersion": api_version, "kind": kind, "metadata": {}, "spec": spec}))
}

fn s(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

fn map_entry(b: &[u8], bytes_value: bool) -> (String, Value) {
    let mut k = String::new();
    let mut v = Value::Null;
    for (num, f) in fields(b).unwrap_or_default() {
        match (num, f) {
            (1, Err(x)) => k = String::from_utf8_lossy(&x).into_owned(),
            (2, Err(x)) => {
                v = if bytes_value {
                    use base64::Engine;
                    json!(base64::engine::general_purpose::STANDARD.encode(&x))
                } else {
                    s(&x)
                }
            }
            _ => {}
        }
    }
    (k, v)
}

fn owner_reference(b: &[u8]) -> Value {
    let mut m = Map::new();
    for (num, f) in fields(b).unwrap_or_default() {
        match (num, f) {
            (1, Err(x)) => {
                m.insert("kind".into(), s(&x));
            }
            (3, Err(x)) => {
                m.insert("name".into(), s(&x));
            }
            (4, Err(x)) => {
                m.insert("uid".into(), s(&x));
            }
            (5, Err(x)) => {
                m.insert("apiVersion".into(), s(&x));
            }
            (6, Ok(x)) => {
                m.insert("controller".into(), json!(x != 0));
            }
            (7, Ok(x)) => {
                m.insert("blockOwnerDeletion".into(), json!(x != 0));
            }
            _ => {}
        }
    }
    Value::Object(m)
}

fn object_meta(b: &[u8]) -> Value {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = vec![];
    let mut owners = vec![];
    for (num, f) in fields(b).unwrap_or_default() {
        match (num, f) {
            (1, Err(x)) => {
                m.insert("name".into(), s(&x));
            }
            (2, Err(x)) => {
                m.insert("generateName".into(), s(&x));
            }
            (3, Err(x)) => {
                m.insert("namespace".into(), s(&x));
            }
            (5, Err(x)) => {
                m.insert("uid".into(), s(&x));
            }
            (6, Err(x)) => {
                m.insert("resourceVersion".into(), s(&x));
            }
            (11, Err(x)) => {
                let (k, v) = map_entry(&x, false);
                labels.insert(k, v);
            }
            (12, Err(x)) => {
                let (k, v) = map_entry(&x, false);
                annotations.insert(k, v);
            }
            (13, Err(x)) => owners.push(owner_reference(&x)),
            (14, Err(x)) => finalizers.push(s(&x)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    Value::Object(m)
}

/// Decode a protobuf body of the kinds client-go's typed clients send to us (Helm's
/// release storage, kubectl's generators): Secret, ConfigMap, Namespace, ServiceAccount,
/// DeleteOptions, and the authorization reviews.
pub fn decode(body: &[u8]) -> Option<Value> {
    let raw = body.strip_prefix(b"k8s\x00")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut payload = vec![];
    for (num, v) in fields(raw)? {
        match (num, v) {
            (1, Err(tm)) => {
                let m = strings(&tm, &[(1, "apiVersion"), (2, "kind")]);
                api_version = m
                    .get("apiVersion")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .into();
                kind = m.get("kind").and_then(|v| v.as_str()).unwrap_or("").into();
            }
            (2, Err(p)) => payload = p,
            _ => {}
        }
    }
    if kind.ends_with("Review") {
        return decode_review(body);
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!(kind));
    let mut data = Map::new();
    let mut string_data = Map::new();
    let mut binary = Map::new();
    for (num, f) in fields(&payload)? {
        match (kind.as_str(), num, f) {
            ("DeleteOptions", 1, Ok(x)) => {
                out.insert("gracePeriodSeconds".into(), json!(x as i64));
            }
            ("DeleteOptions", 2, Err(x)) => {
                out.insert(
                    "preconditions".into(),
                    Value::Object(strings(&x, &[(1, "uid"), (2, "resourceVersion")])),
                );
            }
            ("DeleteOptions", 3, Ok(x)) => {
                out.insert("orphanDependents".into(), json!(x != 0));
            }
            ("DeleteOptions", 4, Err(x)) => {
                out.insert("propagationPolicy".into(), s(&x));
            }
            ("DeleteOptions", 5, Err(x)) => {
                let e = out.entry("dryRun").or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(s(&x));
                }
            }
            ("DeleteOptions", _, _) => {}
            (_, 1, Err(x)) => {
                out.insert("metadata".into(), object_meta(&x));
            }
            ("Secret", 2, Err(x)) => {
                let (k, v) = map_entry(&x, true);
                data.insert(k, v);
            }
            ("Secret", 3, Err(x)) => {
                out.insert("type".into(), s(&x));
            }
            ("Secret", 4, Err(x)) => {
                let (k, v) = map_entry(&x, false);
                string_data.insert(k, v);
            }
            ("Secret", 5, Ok(x)) | ("ConfigMap", 4, Ok(x)) => {
                out.insert("immutable".into(), json!(x != 0));
            }
            ("ConfigMap", 2, Err(x)) => {
                let (k, v) = map_entry(&x, false);
                data.insert(k, v);
            }
            ("ConfigMap", 3, Err(x)) => {
                let (k, v) = map_entry(&x, true);
                binary.insert(k, v);
            }
            ("Namespace", 2, Err(x)) => {
                let fins: Vec<Value> = fields(&x)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(n, f)| if n == 1 { f.err().map(|b| s(&b)) } else { None })
                    .collect();
                out.insert("spec".into(), json!({"finalizers": fins}));
            }
            ("ServiceAccount", 4, Ok(x)) => {
                out.insert("automountServiceAccountToken".into(), json!(x != 0));
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        out.insert("data".into(), Value::Object(data));
    }
    if !string_data.is_empty() {
        out.insert("stringData".into(), Value::Object(string_data));
    }
    if !binary.is_empty() {
        out.insert("binaryData".into(), Value::Object(binary));
    }
    match kind.as_str() {
        "Secret" | "ConfigMap" | "Namespace" | "ServiceAccount" | "DeleteOptions" => {
            Some(Value::Object(out))
        }
        _ => None,
    }
}

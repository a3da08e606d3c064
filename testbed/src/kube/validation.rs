//! Validation of custom resources against their CRD's structural schema (types, enums,
//! formats, bounds, required, pattern), pruning of unknown fields, defaulting, CEL
//! `x-kubernetes-validations` (via kube-cel, with `oldSelf` for transition rules), and
//! the structural-schema checks kube-apiserver applies to a CRD itself.
use serde_json::{Map, Value};

use super::error::Cause;

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

/// A schema number as kube-apiserver prints it (integers without a fraction).
fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserve(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(|v| v.as_bool())
        == Some(true)
}

/// Removes fields the schema does not declare (and nulls of non-nullable fields);
/// returns the pruned field paths (for `fieldValidation`).
pub fn prune(v: &mut Value, s: &Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let embedded = root
                || s.get("x-kubernetes-embedded-resource")
                    .and_then(|v| v.as_bool())
                    == Some(true);
            let props = s.get("properties").and_then(|p| p.as_object());
            let addl = s.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = preserve(s)
                || s.get("additionalProperties").and_then(|a| a.as_bool()) == Some(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                let child_path = join(path, &k);
                let child_schema = props.and_then(|p| p.get(&k)).or(addl);
                match child_schema {
                    Some(cs) => {
                        let nullable = cs.get("nullable").and_then(|v| v.as_bool()) == Some(true);
                        if m.get(&k).is_some_and(|x| x.is_null()) && !nullable {
                            m.remove(&k);
                            continue;
                        }
                        if let Some(c) = m.get_mut(&k) {
                            prune(c, cs, &child_path, false, pruned);
                        }
                    }
                    None => {
                        if !keep_unknown {
                            m.remove(&k);
                            pruned.push(child_path);
                        }
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for (i, x) in a.iter_mut().enumerate() {
                    prune(x, items, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

fn check_format(fmt: &str, s: &str) -> bool {
    match fmt {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "uri" => url::Url::parse(s).is_ok(),
        "email" => s.contains('@'),
        "hostname" => {
            !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
        _ => true,
    }
}

/// OpenAPI value validation, messages as kube-apiserver prints them.
pub fn validate_schema(v: &Value, s: &Value, path: &str, errs: &mut Vec<Cause>) {
    if v.is_null() {
        if s.get("nullable").and_then(|x| x.as_bool()) == Some(true) {
            return;
        }
    }
    let int_or_string = s
        .get("x-kubernetes-int-or-string")
        .and_then(|x| x.as_bool())
        == Some(true);
    if int_or_string {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errs.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type integer,string: {}",
                    show(v),
                    show(v)
                ),
            ));
            return;
        }
    } else if let Some(t) = s.get("type").and_then(|t| t.as_str()) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            errs.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
                ),
            ));
            return;
        }
    }
    if let Some(en) = s.get("enum").and_then(|e| e.as_array()) {
        if !en.contains(v) {
            let sup: Vec<String> = en.iter().map(|x| x.to_string()).collect();
            errs.push(Cause::new(
                "FieldValueNotSupported",
                path,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    v,
                    sup.join(", ")
                ),
            ));
        }
    }
    match v {
        Value::String(st) => {
            if let Some(f) = s.get("format").and_then(|f| f.as_str()) {
                if !check_format(f, st) {
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!("Invalid value: {v}: {path} in body must be of type {f}: {v}"),
                    ));
                }
            }
            let len = st.chars().count() as u64;
            if let Some(max) = s.get("maxLength").and_then(|m| m.as_u64()) {
                if len > max {
                    errs.push(Cause::new(
                        "FieldValueTooLong",
                        path,
                        format!("Too long: may not be more than {max} bytes"),
                    ));
                }
            }
            if let Some(min) = s.get("minLength").and_then(|m| m.as_u64()) {
                if len < min {
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!(
                            "Invalid value: {v}: {path} in body should be at least {min} chars long"
                        ),
                    ));
                }
            }
            if let Some(p) = s.get("pattern").and_then(|p| p.as_str()) {
                if let Ok(re) = regex::Regex::new(p) {
                    if !re.is_match(st) {
                        errs.push(Cause::new(
                            "FieldValueInvalid",
                            path,
                            format!("Invalid value: {v}: {path} in body should match '{p}'"),
                        ));
                    }
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(f) = s.get("format").and_then(|f| f.as_str()) {
                let out = match f {
                    "int32" => !(i32::MIN as f64..=i32::MAX as f64).contains(&x),
                    _ => false,
                };
                if out {
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!("Invalid value: {v}: {path} in body must be of type {f}: {v}"),
                    ));
                }
            }
            let excl_max = s.get("exclusiveMaximum").and_then(|e| e.as_bool()) == Some(true);
            if let Some(max) = s.get("maximum").and_then(|m| m.as_f64()) {
                if x > max || (excl_max && x >= max) {
                    let rel = if excl_max {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!(
                            "Invalid value: {v}: {path} in body should be {rel} {}",
                            num(&s["maximum"])
                        ),
                    ));
                }
            }
            let excl_min = s.get("exclusiveMinimum").and_then(|e| e.as_bool()) == Some(true);
            if let Some(min) = s.get("minimum").and_then(|m| m.as_f64()) {
                if x < min || (excl_min && x <= min) {
                    let rel = if excl_min {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!(
                            "Invalid value: {v}: {path} in body should be {rel} {}",
                            num(&s["minimum"])
                        ),
                    ));
                }
            }
            if let Some(m) = s.get("multipleOf").and_then(|m| m.as_f64()) {
                if m != 0.0 && (x / m).fract() != 0.0 {
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!(
                            "Invalid value: {v}: {path} in body should be a multiple of {}",
                            num(&s["multipleOf"])
                        ),
                    ));
                }
            }
        }
        Value::Array(a) => {
            if let Some(max) = s.get("maxItems").and_then(|m| m.as_u64()) {
                if a.len() as u64 > max {
                    errs.push(Cause::new(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {}: must have at most {max} items", a.len()),
                    ));
                }
            }
            if let Some(min) = s.get("minItems").and_then(|m| m.as_u64()) {
                if (a.len() as u64) < min {
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!(
                            "Invalid value: {}: {path} in body should have at least {min} items",
                            a.len()
                        ),
                    ));
                }
            }
            let list_type = s.get("x-kubernetes-list-type").and_then(|t| t.as_str());
            if list_type == Some("set") {
                for (i, x) in a.iter().enumerate() {
                    if a[..i].contains(x) {
                        errs.push(Cause::new(
                            "FieldValueDuplicate",
                            &format!("{path}[{i}]"),
                            format!("Duplicate value: {x}"),
                        ));
                    }
                }
            }
            if list_type == Some("map") {
                let keys: Vec<&str> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(|k| k.as_array())
                    .map(|k| k.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                let key_of = |x: &Value| {
                    keys.iter()
                        .map(|k| x.get(*k).cloned().unwrap_or(Value::Null))
                        .collect::<Vec<_>>()
                };
                for (i, x) in a.iter().enumerate() {
                    let kx = key_of(x);
                    if a[..i].iter().any(|y| key_of(y) == kx) {
                        let mut m = Map::new();
                        for (k, kv) in keys.iter().zip(kx) {
                            m.insert(k.to_string(), kv);
                        }
                        errs.push(Cause::new(
                            "FieldValueDuplicate",
                            &format!("{path}[{i}]"),
                            format!("Duplicate value: {}", Value::Object(m)),
                        ));
                    }
                }
            }
            if let Some(items) = s.get("items") {
                for (i, x) in a.iter().enumerate() {
                    validate_schema(x, items, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::Object(m) => {
            if let Some(req) = s.get("required").and_then(|r| r.as_array()) {
                for r in req.iter().filter_map(|r| r.as_str()) {
                    if !m.contains_key(r) {
                        errs.push(Cause::new(
                            "FieldValueRequired",
                            &join(path, r),
                            "Required value",
                        ));
                    }
                }
            }
            if let Some(max) = s.get("maxProperties").and_then(|x| x.as_u64()) {
                if m.len() as u64 > max {
                    errs.push(Cause::new(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {}: must have at most {max} items", m.len()),
                    ));
                }
            }
            let props = s.get("properties").and_then(|p| p.as_object());
            let addl = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, c) in m {
                if path.is_empty() && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)).or(addl) {
                    validate_schema(c, cs, &join(path, k), errs);
                }
            }
        }
        _ => {}
    }
    if let Some(all) = s.get("allOf").and_then(|a| a.as_array()) {
        for sub in all {
            validate_schema(v, sub, path, errs);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(|a| a.as_array()) {
        if !any.is_empty()
            && !any.iter().any(|sub| {
                let mut e = vec![];
                validate_schema(v, sub, path, &mut e);
                e.is_empty()
            })
        {
            errs.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must match at least one schema in anyOf",
                    show(v)
                ),
            ));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(|a| a.as_array()) {
        let n = one
            .iter()
            .filter(|sub| {
                let mut e = vec![];
                validate_schema(v, sub, path, &mut e);
                e.is_empty()
            })
            .count();
        if !one.is_empty() && n != 1 {
            errs.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must match exactly one schema in oneOf",
                    show(v)
                ),
            ));
        }
    }
}

/// Node of `v` at a kube-cel field path like `spec.items[0].name`.
pub fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    if path.is_empty() {
        return Some(cur);
    }
    for seg in path.split('.') {
        let (name, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(mut rest) = idx {
            while let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']')?;
                let key = &r[..end];
                cur = match key.parse::<usize>() {
                    Ok(i) => cur.get(i)?,
                    Err(_) => cur.get(key.trim_matches('\''))?,
                };
                rest = &r[end + 1..];
            }
        }
    }
    Some(cur)
}

/// CEL `x-kubernetes-validations`, with `old` for transition rules.
pub fn validate_cel(
    compiled: &kube_cel::CompiledSchema,
    v: &Value,
    old: Option<&Value>,
    errs: &mut Vec<Cause>,
) {
    if let Err(es) = kube_cel::validate_compiled(compiled, v, old) {
        for e in es.iter() {
            let field = e.field_path.clone();
            let tname = at_path(v, &field).map(type_name).unwrap_or("object");
            let (reason, msg) = match e.reason.as_deref() {
                Some("FieldValueForbidden") => {
                    ("FieldValueForbidden", format!("Forbidden: {}", e.message))
                }
                Some("FieldValueRequired") => (
                    "FieldValueRequired",
                    format!("Required value: {}", e.message),
                ),
                Some("FieldValueDuplicate") => (
                    "FieldValueDuplicate",
                    format!("Duplicate value: {}", e.message),
                ),
                _ => (
                    "FieldValueInvalid",
                    format!("Invalid value: \"{tname}\": {}", e.message),
                ),
            };
            let field = if field.is_empty() {
                "<nil>".to_string()
            } else {
                field
            };
            errs.push(Cause::new(reason, &field, msg));
        }
    }
}

/// Structural-schema checks kube-apiserver applies to a CRD version's schema.
pub fn check_structural(s: &Value, path: &str, root: bool, errs: &mut Vec<Cause>) {
    let Some(m) = s.as_object() else {
        errs.push(Cause::new(
            "FieldValueInvalid",
            path,
            "Invalid value: must be an object",
        ));
        return;
    };
    let t = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let pres = preserve(s);
    let ios = m
        .get("x-kubernetes-int-or-string")
        .and_then(|x| x.as_bool())
        == Some(true);
    if root && t != "object" {
        if t.is_empty() {
            errs.push(Cause::new(
                "FieldValueRequired",
                &format!("{path}.type"),
                "Required value: must not be empty at the root",
            ));
        } else {
            errs.push(Cause::new(
                "FieldValueInvalid",
                &format!("{path}.type"),
                format!("Invalid value: \"{t}\": must be object at the root"),
            ));
        }
    } else if !root && t.is_empty() && !pres && !ios {
        errs.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.type"),
            "Required value: must not be empty for specified object fields",
        ));
    }
    if let Some(tp) = m.get("type").and_then(|t| t.as_str()) {
        if !["object", "array", "string", "integer", "number", "boolean"].contains(&tp) {
            errs.push(Cause::new(
                "FieldValueNotSupported",
                &format!("{path}.type"),
                format!("Unsupported value: \"{tp}\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""),
            ));
        }
    }
    if t == "array" && m.get("items").is_none() {
        errs.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.items"),
            "Required value: must be specified",
        ));
    }
    if m.contains_key("properties")
        && m.get("additionalProperties")
            .is_some_and(|a| a.is_object() || a.as_bool() == Some(false))
    {
        errs.push(Cause::new(
            "FieldValueForbidden",
            &format!("{path}.additionalProperties"),
            "Forbidden: additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(props) = m.get("properties").and_then(|p| p.as_object()) {
        for (k, c) in props {
            if root && k == "metadata" {
                if let Some(mp) = c.get("properties").and_then(|p| p.as_object()) {
                    for mk in mp.keys() {
                        if mk != "name" && mk != "generateName" {
                            errs.push(Cause::new(
                                "FieldValueForbidden",
                                &format!("{path}.properties[metadata].properties[{mk}]"),
                                "Forbidden: must not be specified",
                            ));
                        }
                    }
                }
            }
            check_structural(c, &format!("{path}.properties[{k}]"), false, errs);
        }
    }
    if let Some(items) = m.get("items") {
        if items.is_object() {
            check_structural(items, &format!("{path}.items"), false, errs);
        }
    }
    if let Some(ap) = m.get("additionalProperties").filter(|a| a.is_object()) {
        check_structural(ap, &format!("{path}.additionalProperties"), false, errs);
    }
    if let Some(rules) = m.get("x-kubernetes-validations").and_then(|r| r.as_array()) {
        for (i, r) in rules.iter().enumerate() {
            let rule = r.get("rule").and_then(|x| x.as_str()).unwrap_or("");
            if rule.is_empty() {
                errs.push(Cause::new(
                    "FieldValueRequired",
                    &format!("{path}.x-kubernetes-validations[{i}].rule"),
                    "Required value",
                ));
            } else if let Err(e) = kube_cel::cel::Program::compile(rule) {
                errs.push(Cause::new(
                    "FieldValueInvalid",
                    &format!("{path}.x-kubernetes-validations[{i}].rule"),
                    format!("Invalid value: \"{rule}\": compilation failed: {e}"),
                ));
            }
        }
    }
}

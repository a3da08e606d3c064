//! Server-side apply and managedFields (FieldsV1): field sets, ownership of Update
//! writes, apply merges (atomic lists unless x-kubernetes-list-type says map/set),
//! conflicts with causes, and removal of fields a manager stopped applying.
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::{ApiError, Cause};
use super::patch::builtin_merge_key;
use super::store::now_rfc3339;

/// A FieldsV1 set: keys "f:<name>", "k:<json>", "v:<json>", "i:<n>", "." → children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fs(pub BTreeMap<String, Fs>);

impl Fs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
    pub fn from_json(v: &Value) -> Fs {
        match v {
            Value::Object(m) => Fs(m
                .iter()
                .map(|(k, v)| (k.clone(), Fs::from_json(v)))
                .collect()),
            _ => Fs::default(),
        }
    }
    /// All leaf paths (a node without children is a leaf; "." entries are leaves).
    pub fn leaves(&self) -> Vec<Vec<String>> {
        let mut out = vec![];
        fn walk(fs: &Fs, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            for (k, child) in &fs.0 {
                prefix.push(k.clone());
                if child.0.is_empty() {
                    out.push(prefix.clone());
                } else {
                    walk(child, prefix, out);
                }
                prefix.pop();
            }
        }
        walk(self, &mut vec![], &mut out);
        out
    }
    pub fn contains_leaf(&self, path: &[String]) -> bool {
        let mut cur = self;
        for p in path {
            match cur.0.get(p) {
                Some(c) => cur = c,
                None => return false,
            }
        }
        cur.0.is_empty()
    }
    pub fn insert(&mut self, path: &[String]) {
        let mut cur = self;
        for p in path {
            cur = cur.0.entry(p.clone()).or_default();
        }
    }
    pub fn remove(&mut self, path: &[String]) {
        fn rm(fs: &mut Fs, path: &[String]) {
            if path.is_empty() {
                return;
            }
            if path.len() == 1 {
                fs.0.remove(&path[0]);
                return;
            }
            if let Some(c) = fs.0.get_mut(&path[0]) {
                rm(c, &path[1..]);
                if c.0.is_empty() {
                    fs.0.remove(&path[0]);
                }
            }
        }
        rm(self, path)
    }
    pub fn union(&mut self, other: &Fs) {
        for (k, v) in &other.0 {
            self.0.entry(k.clone()).or_default().union(v);
        }
    }
}

/// Where we are in the object's schema, to know list and map types.
#[derive(Clone, Copy, Debug)]
pub enum Nav<'a> {
    /// Custom resource: the structural schema node (None = unknown/preserved).
    Crd(Option<&'a Value>),
    /// Built-in kind (or object metadata): decided by field name.
    Builtin(&'a str),
}

#[derive(Debug, PartialEq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

impl<'a> Nav<'a> {
    pub fn child(self, key: &'a str, root: bool) -> Nav<'a> {
        if root && key == "metadata" {
            return Nav::Builtin("metadata");
        }
        match self {
            Nav::Crd(Some(s)) => {
                if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
                    Nav::Crd(Some(p))
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    Nav::Crd(Some(ap))
                } else {
                    Nav::Crd(None)
                }
            }
            Nav::Crd(None) => Nav::Crd(None),
            Nav::Builtin(_) => Nav::Builtin(key),
        }
    }
    pub fn items(self) -> Nav<'a> {
        match self {
            Nav::Crd(Some(s)) => Nav::Crd(s.get("items")),
            other => other,
        }
    }
    pub fn atomic_map(self) -> bool {
        match self {
            Nav::Crd(Some(s)) => {
                s.get("x-kubernetes-map-type").and_then(|v| v.as_str()) == Some("atomic")
            }
            _ => false,
        }
    }
    pub fn list_type(self, sample: Option<&Value>) -> ListType {
        match self {
            Nav::Crd(Some(s)) => match s.get("x-kubernetes-list-type").and_then(|v| v.as_str()) {
                Some("set") => ListType::Set,
                Some("map") => ListType::Map(
                    s.get("x-kubernetes-list-map-keys")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|k| k.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                _ => ListType::Atomic,
            },
            Nav::Crd(None) => ListType::Atomic,
            Nav::Builtin(field) => {
                if field == "finalizers" {
                    ListType::Set
                } else if let Some(k) = builtin_merge_key(field, sample) {
                    ListType::Map(vec![k.to_string()])
                } else {
                    ListType::Atomic
                }
            }
        }
    }
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    for k in sorted {
        if let Some(v) = item.get(k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

const TRACKED_META: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// Field set of a whole object. `scope`: None = everything but status (when the type has a
/// status subresource, `skip_status`), Some("status") = status only.
pub fn object_fieldset(obj: &Value, nav: Nav<'_>, skip_status: bool, status_only: bool) -> Fs {
    let mut fs = Fs::default();
    let Some(m) = obj.as_object() else { return fs };
    for (k, v) in m {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        if status_only && k != "status" {
            continue;
        }
        if skip_status && k == "status" {
            continue;
        }
        if k == "metadata" {
            let mut meta = Fs::default();
            if let Some(mm) = v.as_object() {
                for t in TRACKED_META {
                    if let Some(c) = mm.get(t) {
                        meta.0
                            .insert(format!("f:{t}"), value_fs(c, Nav::Builtin(t)));
                    }
                }
            }
            if !meta.is_empty() {
                fs.0.insert("f:metadata".into(), meta);
            }
            continue;
        }
        fs.0.insert(format!("f:{k}"), value_fs(v, nav.child(k, true)));
    }
    fs
}

fn value_fs(v: &Value, nav: Nav<'_>) -> Fs {
    match v {
        Value::Object(m) if !m.is_empty() && !nav.atomic_map() => {
            let mut fs = Fs::default();
            for (k, c) in m {
                fs.0.insert(format!("f:{k}"), value_fs(c, nav.child(k, false)));
            }
            fs
        }
        Value::Array(a) => match nav.list_type(a.first()) {
            ListType::Atomic => Fs::default(),
            ListType::Set => Fs(a
                .iter()
                .map(|x| (format!("v:{x}"), Fs::default()))
                .collect()),
            ListType::Map(keys) => {
                let mut fs = Fs::default();
                for item in a {
                    let mut ifs = value_fs(item, nav.items());
                    ifs.0.insert(".".into(), Fs::default());
                    fs.0.insert(item_key(item, &keys), ifs);
                }
                fs
            }
        },
        _ => Fs::default(),
    }
}

fn matches_key(item: &Value, key: &str) -> bool {
    let Ok(Value::Object(k)) = serde_json::from_str::<Value>(key) else {
        return false;
    };
    k.iter().all(|(kk, kv)| item.get(kk) == Some(kv))
}

/// Semantic equality: numbers compare by value (1 == 1.0), as typed decoding would see them.
pub fn sem_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => value_eq(x, y),
        _ => false,
    }
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Value at a field path (None when absent).
pub fn value_at<'v>(obj: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = obj;
    for p in path {
        if p == "." {
            return Some(cur);
        }
        cur = if let Some(f) = p.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = p.strip_prefix("k:") {
            cur.as_array()?.iter().find(|i| matches_key(i, k))?
        } else if let Some(v) = p.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|i| **i == want)?
        } else if let Some(i) = p.strip_prefix("i:") {
            cur.as_array()?.get(i.parse::<usize>().ok()?)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Dotted path as kube-apiserver prints it in conflicts: `.spec.replicas`, `.spec.c[name="x"].image`.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if p == "." {
            continue;
        }
        if let Some(f) = p.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(k) {
                let inner: Vec<String> = m.iter().map(|(a, b)| format!("{a}={b}")).collect();
                s.push_str(&format!("[{}]", inner.join(",")));
            }
        } else if let Some(v) = p.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = p.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub set: Fs,
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(a) = obj
        .pointer("/metadata/managedFields")
        .and_then(|v| v.as_array())
    else {
        return vec![];
    };
    a.iter()
        .map(|e| Entry {
            manager: e
                .get("manager")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .into(),
            operation: e
                .get("operation")
                .and_then(|v| v.as_str())
                .unwrap_or("Update")
                .into(),
            api_version: e
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .into(),
            time: e.get("time").and_then(|v| v.as_str()).unwrap_or("").into(),
            subresource: e
                .get("subresource")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .into(),
            set: Fs::from_json(e.get("fieldsV1").unwrap_or(&Value::Null)),
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.set.to_json(),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        if arr.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(arr));
        }
    }
}

pub struct Ctx<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub nav: Nav<'a>,
    pub has_status_sub: bool,
}

impl Ctx<'_> {
    fn fieldset(&self, obj: &Value) -> Fs {
        let status_only = self.subresource == "status";
        object_fieldset(
            obj,
            self.nav,
            self.has_status_sub && !status_only,
            status_only,
        )
    }
}

fn upsert_entry(entries: &mut Vec<Entry>, ctx: &Ctx<'_>, op: &str, set: Fs) {
    match entries
        .iter_mut()
        .find(|e| e.manager == ctx.manager && e.operation == op && e.subresource == ctx.subresource)
    {
        Some(e) => {
            if e.set != set || e.api_version != ctx.api_version {
                e.set = set;
                e.time = now_rfc3339();
                e.api_version = ctx.api_version.to_string();
            }
        }
        None => entries.push(Entry {
            manager: ctx.manager.to_string(),
            operation: op.to_string(),
            api_version: ctx.api_version.to_string(),
            time: now_rfc3339(),
            subresource: ctx.subresource.to_string(),
            set,
        }),
    }
    entries.retain(|e| !e.set.is_empty());
}

/// managedFields after a non-apply write (create/update/patch) by `ctx.manager`.
pub fn track_update(old: Option<&Value>, new: &mut Value, ctx: &Ctx<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_fs = ctx.fieldset(new);
    let mut changed = Fs::default();
    for leaf in new_fs.leaves() {
        let differs = match old {
            None => true,
            Some(o) => {
                if leaf.last().map(|s| s.as_str()) == Some(".") {
                    value_at(o, &leaf[..leaf.len() - 1]).is_none()
                } else {
                    !sem_eq(value_at(o, &leaf), value_at(new, &leaf))
                }
            }
        };
        if differs {
            changed.insert(&leaf);
        }
    }
    // Fields that no longer exist, and fields now changed by this manager, leave the others.
    for e in entries.iter_mut() {
        if e.subresource != ctx.subresource {
            continue;
        }
        for leaf in e.set.leaves() {
            let gone = !new_fs.contains_leaf(&leaf) && value_at(new, &leaf).is_none();
            let taken = changed.contains_leaf(&leaf)
                && !(e.manager == ctx.manager && e.operation == "Update");
            if gone || taken {
                e.set.remove(&leaf);
            }
        }
    }
    let mut mine = entries
        .iter()
        .find(|e| {
            e.manager == ctx.manager && e.operation == "Update" && e.subresource == ctx.subresource
        })
        .map(|e| e.set.clone())
        .unwrap_or_default();
    mine.union(&changed);
    // Drop paths that vanished from my own set too.
    for leaf in mine.leaves() {
        if value_at(new, &leaf).is_none() {
            mine.remove(&leaf);
        }
    }
    if !mine.is_empty()
        || entries
            .iter()
            .any(|e| e.manager == ctx.manager && e.operation == "Update")
    {
        upsert_entry(&mut entries, ctx, "Update", mine);
    }
    entries.retain(|e| !e.set.is_empty());
    write_entries(new, &entries);
}

fn merge_applied(live: &Value, applied: &Value, nav: Nav<'_>, root: bool) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !nav.atomic_map() => {
            let mut out = l.clone();
            for (k, v) in a {
                if root && k == "metadata" {
                    let merged = merge_applied(
                        l.get(k).unwrap_or(&Value::Null),
                        v,
                        Nav::Builtin("metadata"),
                        false,
                    );
                    out.insert(k.clone(), merged);
                    continue;
                }
                if v.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match l.get(k) {
                    Some(lv) => merge_applied(lv, v, nav.child(k, root), false),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match nav.list_type(a.first().or(l.first())) {
            ListType::Atomic => applied.clone(),
            ListType::Set => {
                let mut out = l.clone();
                for x in a {
                    if !out.contains(x) {
                        out.push(x.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => {
                let mut out = l.clone();
                for ai in a {
                    let key = item_key(ai, &keys);
                    match out.iter().position(|li| item_key(li, &keys) == key) {
                        Some(i) => out[i] = merge_applied(&out[i], ai, nav.items(), false),
                        None => out.push(ai.clone()),
                    }
                }
                Value::Array(out)
            }
        },
        _ => applied.clone(),
    }
}

fn delete_path(obj: &mut Value, path: &[String]) {
    if path.is_empty() {
        return;
    }
    let (last, parent_path) = path.split_last().unwrap();
    let parent_path: Vec<String> = parent_path.to_vec();
    // Navigate mutably.
    let mut cur = obj;
    for p in &parent_path {
        let next = if let Some(f) = p.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = p.strip_prefix("k:") {
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| matches_key(i, k)))
        } else if let Some(v) = p.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).unwrap_or(Value::Null);
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| **i == want))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let Some(a) = cur.as_array_mut() {
            a.retain(|i| !matches_key(i, k));
        }
    } else if let Some(v) = last.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).unwrap_or(Value::Null);
        if let Some(a) = cur.as_array_mut() {
            a.retain(|i| *i != want);
        }
    }
}

fn prune_removed(obj: &mut Value, old: &Fs, new: &Fs, others: &Fs, prefix: &mut Vec<String>) {
    for (k, old_child) in &old.0 {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        let empty = Fs::default();
        let others_child = others.0.get(k);
        match new.0.get(k) {
            Some(new_child) => prune_removed(
                obj,
                old_child,
                new_child,
                others_child.unwrap_or(&empty),
                prefix,
            ),
            None => {
                if others_child.is_none() {
                    delete_path(obj, prefix);
                } else {
                    prune_removed(
                        obj,
                        old_child,
                        &empty,
                        others_child.unwrap_or(&empty),
                        prefix,
                    );
                }
            }
        }
        prefix.pop();
    }
}

/// Server-side apply of `applied` onto `live` (None = create). Returns the merged object with
/// managedFields, or a 409 Conflict listing the conflicting managers and fields.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    ctx: &Ctx<'_>,
    force: bool,
    gk: (&str, &str, &str),
) -> Result<Value, ApiError> {
    let mut entries = live.map(read_entries).unwrap_or_default();
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let new_set = ctx.fieldset(applied);
    let mut conflicts: Vec<(String, String, Vec<String>)> = vec![];
    for leaf in new_set.leaves() {
        if leaf.last().map(|s| s.as_str()) == Some(".") {
            continue;
        }
        let live_v = value_at(&base, &leaf);
        let applied_v = value_at(applied, &leaf);
        if sem_eq(live_v, applied_v) {
            continue;
        }
        for e in entries.iter_mut() {
            if (e.manager == ctx.manager && e.operation == "Apply")
                || e.subresource != ctx.subresource
            {
                continue;
            }
            if e.set.contains_leaf(&leaf) {
                if force {
                    e.set.remove(&leaf);
                } else {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), leaf.clone()));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        let (group, name, kind) = gk;
        let mut by_mgr: Vec<(String, String, Vec<String>)> = vec![];
        for (m, av, p) in &conflicts {
            match by_mgr.iter_mut().find(|(mm, _, _)| mm == m) {
                Some((_, _, ps)) => ps.push(path_string(p)),
                None => by_mgr.push((m.clone(), av.clone(), vec![path_string(p)])),
            }
        }
        let mut parts = vec![];
        for (m, av, ps) in &by_mgr {
            if ps.len() == 1 {
                parts.push(format!("conflict with \"{m}\" using {av}: {}", ps[0]));
            } else {
                parts.push(format!(
                    "conflicts with \"{m}\" using {av}:\n{}",
                    ps.iter()
                        .map(|p| format!("- {p}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
        }
        let n = conflicts.len();
        let msg = format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            parts.join("\n")
        );
        let mut e = ApiError::new(409, "Conflict", msg).details(name, group, kind);
        e.causes = conflicts
            .iter()
            .map(|(m, av, p)| {
                Cause::new(
                    "FieldManagerConflict",
                    &path_string(p),
                    format!("conflict with \"{m}\" using {av}"),
                )
            })
            .collect();
        return Err(e);
    }
    let mut merged = merge_applied(&base, applied, ctx.nav, true);
    let old_mine = entries
        .iter()
        .find(|e| {
            e.manager == ctx.manager && e.operation == "Apply" && e.subresource == ctx.subresource
        })
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut others = Fs::default();
    for e in &entries {
        if !(e.manager == ctx.manager && e.operation == "Apply" && e.subresource == ctx.subresource)
        {
            others.union(&e.set);
        }
    }
    prune_removed(&mut merged, &old_mine, &new_set, &others, &mut vec![]);
    upsert_entry(&mut entries, ctx, "Apply", new_set);
    write_entries(&mut merged, &entries);
    Ok(merged)
}

//! The verbs on stored objects: create, update (PUT), patch, server-side apply, delete
//! with finalizers/preconditions and owner-reference garbage collection, list.
use std::sync::Arc;

use serde_json::{Value, json};

use super::apply::{self, Ctx, Nav};
use super::builtin;
use super::crd;
use super::error::{ApiError, ApiResult, Cause, qualified};
use super::patch;
use super::registry::{Builtin, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{EventType, State, name_of, now_rfc3339, ns_of, rv_of, str_at};
use super::validation;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

#[derive(Clone, Debug)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub manager: String,
    pub validation: FieldValidation,
    pub force: bool,
    pub subresource: String,
}

impl Default for WriteOpts {
    fn default() -> Self {
        WriteOpts {
            dry_run: false,
            manager: "unknown".into(),
            validation: FieldValidation::Warn,
            force: false,
            subresource: String::new(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub propagation: Option<String>,
}

pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

fn storage_form(rt: &ResourceType, v: Value) -> Value {
    if rt.builtin == Some(Builtin::EventsEvent) {
        builtin::events_to_core(&v)
    } else {
        v
    }
}

/// Object as served at `rt`'s group/version.
pub fn present(rt: &ResourceType, v: &Value) -> Value {
    if rt.builtin == Some(Builtin::EventsEvent) {
        return builtin::core_to_events(v);
    }
    let mut out = v.clone();
    let av = rt.api_version();
    if out.get("apiVersion").and_then(|a| a.as_str()) != Some(av.as_str()) {
        out["apiVersion"] = json!(av);
    }
    if out.get("kind").is_none() {
        out["kind"] = json!(rt.kind);
    }
    out
}

fn nav(rt: &ResourceType) -> Nav<'_> {
    match &rt.crd {
        Some(c) => Nav::Crd(c.schema.as_ref()),
        None => Nav::Builtin(""),
    }
}

fn dns_subdomain_ok(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .unwrap()
    });
    !s.is_empty() && s.len() <= 253 && re.is_match(s)
}

/// Normalise and validate an object being written (`old` on updates).
pub fn admit(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let name = name_of(obj).to_string();
    if let Some(b) = rt.builtin {
        let out = builtin::roundtrip(b, obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                rt.kind, rt.version, rt.kind
            ))
        })?;
        let mut unknown = vec![];
        builtin::unknown_fields(obj, &out, "", &mut unknown);
        report_unknown(&unknown, opts, warnings)?;
        *obj = out;
        builtin::default_builtin(b, obj);
    } else if let Some(c) = &rt.crd {
        if let Some(schema) = &c.schema {
            let mut pruned = vec![];
            validation::prune(obj, schema, "", true, &mut pruned);
            report_unknown(&pruned, opts, warnings)?;
            *obj = kube_cel::apply_defaults(schema, obj);
            let mut errs = vec![];
            validation::validate_schema(obj, schema, "", &mut errs);
            if let Some(old) = old {
                // Validation ratcheting (GA in 1.33): a field that did not change may stay invalid.
                errs.retain(|e| {
                    let now = validation::at_path(obj, &e.field);
                    let before = validation::at_path(old, &e.field);
                    !apply::sem_eq(now, before)
                });
            }
            if let Some(compiled) = &c.compiled {
                // Like kube-apiserver: CEL rules run unless a type error blocks them.
                if errs.iter().any(|e| e.reason == "FieldValueTypeInvalid") {
                    errs.push(Cause::new(
                        "FieldValueInvalid",
                        "<nil>",
                        "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
                    ));
                } else {
                    validation::validate_cel(compiled, obj, old, &mut errs);
                }
            }
            if !errs.is_empty() {
                return Err(ApiError::invalid(&rt.group, &rt.kind, &name, errs));
            }
        }
    }
    if !dns_subdomain_ok(&name)
        && rt.builtin != Some(Builtin::CoreEvent)
        && rt.builtin != Some(Builtin::EventsEvent)
    {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            &name,
            vec![Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ),
            )],
        ));
    }
    if rt.builtin == Some(Builtin::Crd) {
        let errs = crd::validate_crd(obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, errs));
        }
    }
    Ok(())
}

fn report_unknown(
    unknown: &[String],
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|u| format!("unknown field \"{u}\""))
        .collect();
    match opts.validation {
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        ))),
        FieldValidation::Warn => {
            warnings.extend(msgs);
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

fn check_type_meta(rt: &ResourceType, body: &Value) -> ApiResult<()> {
    if let Some(k) = body.get("kind").and_then(|k| k.as_str()) {
        if k != rt.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    if let Some(av) = body.get("apiVersion").and_then(|k| k.as_str()) {
        if av != rt.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
    }
    Ok(())
}

fn set_namespace(
    rt: &ResourceType,
    st: &State,
    obj: &mut Value,
    ns: Option<&str>,
    creating: bool,
) -> ApiResult<()> {
    if !obj.get("metadata").is_some_and(|m| m.is_object()) {
        obj["metadata"] = json!({});
    }
    if rt.namespaced {
        let url_ns = ns.unwrap_or("");
        let body_ns = ns_of(obj).to_string();
        if !body_ns.is_empty() && body_ns != url_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if url_ns.is_empty() {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: namespace is required",
            ));
        }
        obj["metadata"]["namespace"] = json!(url_ns);
        if creating {
            match st.get(&(String::new(), "namespaces".into()), "", url_ns) {
                None => return Err(ApiError::not_found("", "namespaces", url_ns)),
                Some(nsobj) => {
                    if nsobj.pointer("/metadata/deletionTimestamp").is_some() {
                        return Err(ApiError::forbidden(format!(
                            "{} \"{}\" is forbidden: unable to create new content in namespace {url_ns} because it is being terminated",
                            qualified(&rt.plural, &rt.group),
                            name_of(obj)
                        ))
                        .details(name_of(obj), &rt.group, &rt.plural));
                    }
                }
            }
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    Ok(())
}

fn random_suffix() -> String {
    const CH: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| CH[rand::random_range(0..CH.len())] as char)
        .collect()
}

fn strip_server_meta(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
}

fn spec_part(rt: &ResourceType, v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        if rt.status || rt.crd.is_none() {
            m.remove("status");
        }
    }
    c
}

/// POST. `applied` = Some(fieldsets already computed) for apply-create.
pub fn create(
    st: &mut State,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    mut obj: Value,
    opts: &WriteOpts,
    from_apply: bool,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    check_type_meta(rt, &obj)?;
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    set_namespace(rt, st, &mut obj, ns, true)?;
    if name_of(&obj).is_empty() {
        let gen_name = str_at(&obj, &["metadata", "generateName"]).to_string();
        if gen_name.is_empty() {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        let storage = rt.storage.clone();
        loop {
            let candidate = format!("{gen_name}{}", random_suffix());
            if st.get(&storage, ns.unwrap_or(""), &candidate).is_none() {
                obj["metadata"]["name"] = json!(candidate);
                break;
            }
        }
    }
    strip_server_meta(&mut obj);
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        if !from_apply {
            m.remove("managedFields");
        }
    }
    let name = name_of(&obj).to_string();
    let namespace = if rt.namespaced {
        ns.unwrap_or("").to_string()
    } else {
        String::new()
    };
    if st.get(&rt.storage, &namespace, &name).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
    }
    if rt.status && rt.builtin != Some(Builtin::Namespace) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    admit(rt, &mut obj, None, opts, warnings)?;
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    if rt.has_generation {
        meta.insert("generation".into(), json!(1));
    }
    if rt.builtin == Some(Builtin::Crd) {
        let existing: Vec<_> = st.registry.types.values().cloned().collect();
        if crd::crd_name_conflicts(&existing, &obj) {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                vec![Cause::new(
                    "FieldValueInvalid",
                    "spec.names.plural",
                    "Invalid value: already in use",
                )],
            ));
        }
        crd::set_established(&mut obj);
    }
    if !from_apply {
        let ctx = Ctx {
            manager: &opts.manager,
            subresource: "",
            api_version: &rt.api_version(),
            nav: nav(rt),
            has_status_sub: rt.status,
        };
        apply::track_update(None, &mut obj, &ctx);
    }
    let obj = storage_form(rt, obj);
    if opts.dry_run {
        return Ok(present(rt, &obj));
    }
    let stored = st.commit(&rt.storage, obj, EventType::Added);
    if rt.builtin == Some(Builtin::Crd) {
        register_crd(st, &stored);
    }
    Ok(present(rt, &stored))
}

fn register_crd(st: &mut State, crd_obj: &Value) {
    let name = name_of(crd_obj).to_string();
    st.registry.remove_crd(&name);
    for t in crd::types_of(crd_obj) {
        st.registry.insert(t);
    }
    st.types_epoch += 1;
}

/// Shared tail of PUT / PATCH / apply on an existing object.
#[allow(clippy::too_many_arguments)]
pub fn finish_update(
    st: &mut State,
    rt: &Arc<ResourceType>,
    old: &Arc<Value>,
    mut new: Value,
    opts: &WriteOpts,
    managed_by_apply: bool,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    let name = name_of(old).to_string();
    let old_v: &Value = old;
    let old_view = present(rt, old_v);
    if !new.is_object()
        || new
            .get("metadata")
            .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::bad_request(
            "the object must be a JSON object with object metadata",
        ));
    }
    check_type_meta(rt, &new)?;
    let body_rv = str_at(&new, &["metadata", "resourceVersion"]).to_string();
    if !body_rv.is_empty() && body_rv != str_at(old_v, &["metadata", "resourceVersion"]) {
        return Err(ApiError::modified(&rt.group, &rt.plural, &name));
    }
    let body_uid = str_at(&new, &["metadata", "uid"]).to_string();
    if !body_uid.is_empty() && body_uid != str_at(old_v, &["metadata", "uid"]) {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            &name,
            &format!(
                "Precondition failed: UID in precondition: {body_uid}, UID in object meta: {}",
                str_at(old_v, &["metadata", "uid"])
            ),
        ));
    }
    if !new.get("metadata").is_some_and(|m| m.is_object()) {
        new["metadata"] = json!({});
    }
    if name_of(&new) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&new)
        )));
    }
    new["apiVersion"] = json!(rt.api_version());
    new["kind"] = json!(rt.kind);
    // Server-owned metadata comes from the stored object.
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
    ] {
        match old_view["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                new["metadata"].as_object_mut().map(|m| m.remove(k));
            }
        }
    }
    if rt.status {
        if opts.subresource == "status" {
            let status = new.get("status").cloned();
            let mut base = old_view.clone();
            match status {
                Some(s) => base["status"] = s,
                None => {
                    base.as_object_mut().map(|m| m.remove("status"));
                }
            }
            if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
                base["metadata"]["managedFields"] = mf;
            }
            new = base;
        } else {
            match old_view.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
    }
    if old_view.pointer("/metadata/deletionTimestamp").is_some() {
        let old_f: Vec<Value> = old_view
            .pointer("/metadata/finalizers")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default();
        let new_f: Vec<Value> = new
            .pointer("/metadata/finalizers")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default();
        let added: Vec<String> = new_f
            .iter()
            .filter(|f| !old_f.contains(f))
            .map(|f| f.to_string())
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                vec![Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        added.join(", ")
                    ),
                )],
            ));
        }
    }
    let old_for_admit = old_view.clone();
    admit(rt, &mut new, Some(&old_for_admit), opts, warnings)?;
    if rt.has_generation {
        let generation = old_view
            .pointer("/metadata/generation")
            .and_then(|g| g.as_i64())
            .unwrap_or(1);
        let bumped = spec_part(rt, &new) != spec_part(rt, &old_view);
        new["metadata"]["generation"] = json!(if bumped { generation + 1 } else { generation });
    }
    if rt.builtin == Some(Builtin::Crd) {
        if opts.subresource != "status" {
            crd::set_established(&mut new);
        }
    }
    if !managed_by_apply {
        let av = rt.api_version();
        let ctx = Ctx {
            manager: &opts.manager,
            subresource: &opts.subresource,
            api_version: &av,
            nav: nav(rt),
            has_status_sub: rt.status,
        };
        new["metadata"]["managedFields"] = old_view
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(Value::Null);
        apply::track_update(Some(&old_view), &mut new, &ctx);
    }
    new["metadata"]["resourceVersion"] = old_view["metadata"]["resourceVersion"].clone();
    if let Some(m) = new["metadata"].as_object_mut() {
        if m.get("managedFields").is_some_and(|v| v.is_null()) {
            m.remove("managedFields");
        }
    }
    if new == old_view {
        return Ok(old_view);
    }
    let new = storage_form(rt, new);
    if opts.dry_run {
        return Ok(present(rt, &new));
    }
    let finalizers_empty = new
        .pointer("/metadata/finalizers")
        .and_then(|f| f.as_array())
        .is_none_or(|a| a.is_empty());
    if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers_empty {
        let stored = st.commit(&rt.storage, new, EventType::Modified);
        let out = present(rt, &stored);
        really_delete(st, rt, &stored);
        return Ok(out);
    }
    let stored = st.commit(&rt.storage, new, EventType::Modified);
    if rt.builtin == Some(Builtin::Crd) {
        register_crd(st, &stored);
    }
    Ok(present(rt, &stored))
}

pub fn get_existing(
    st: &State,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
) -> ApiResult<Arc<Value>> {
    let ns = if rt.namespaced { ns.unwrap_or("") } else { "" };
    st.get(&rt.storage, ns, name)
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
}

pub fn update(
    st: &mut State,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    name: &str,
    mut body: Value,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    let old = get_existing(st, rt, ns, name)?;
    body = storage_form_in(rt, body);
    if let Some(m) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("managedFields");
    }
    finish_update(st, rt, &old, body, opts, false, warnings)
}

fn storage_form_in(_rt: &ResourceType, body: Value) -> Value {
    body
}

pub fn patch(
    st: &mut State,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    name: &str,
    kind: PatchKind,
    body: &Value,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    if let PatchKind::Apply = kind {
        return server_side_apply(st, rt, ns, name, body, opts, warnings);
    }
    let old = get_existing(st, rt, ns, name)?;
    let current = present(rt, &old);
    let new = match kind {
        PatchKind::Json => patch::json_patch(&current, body)?,
        PatchKind::Merge => patch::merge_patch(&current, body),
        PatchKind::Strategic => patch::strategic_merge(&current, body)?,
        PatchKind::Apply => unreachable!(),
    };
    finish_update(st, rt, &old, new, opts, false, warnings)
}

pub fn server_side_apply(
    st: &mut State,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    name: &str,
    body: &Value,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    if opts.manager.is_empty() || opts.manager == "unknown" {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    if !body.is_object()
        || body
            .get("metadata")
            .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::bad_request(
            "an apply patch must be an object with object metadata",
        ));
    }
    check_type_meta(rt, body)?;
    if body.get("apiVersion").is_none() || body.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply patch",
        ));
    }
    let body_name = name_of(body);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let mut applied = body.clone();
    applied["metadata"]["name"] = json!(name);
    if let Some(m) = applied["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    let av = rt.api_version();
    let ctx = Ctx {
        manager: &opts.manager,
        subresource: &opts.subresource,
        api_version: &av,
        nav: nav(rt),
        has_status_sub: rt.status,
    };
    let gk = (rt.group.as_str(), name, rt.plural.as_str());
    let namespace = if rt.namespaced { ns.unwrap_or("") } else { "" };
    match st.get(&rt.storage, namespace, name) {
        None => {
            if opts.subresource == "status" {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            }
            let merged = apply::apply(None, &applied, &ctx, opts.force, gk)?;
            create(st, rt, ns, merged, opts, true, warnings)
        }
        Some(old) => {
            let live = present(rt, &old);
            let mut merged = apply::apply(Some(&live), &applied, &ctx, opts.force, gk)?;
            let body_rv = str_at(body, &["metadata", "resourceVersion"]).to_string();
            merged["metadata"]["resourceVersion"] = if body_rv.is_empty() {
                live["metadata"]["resourceVersion"].clone()
            } else {
                json!(body_rv)
            };
            finish_update(st, rt, &old, merged, opts, true, warnings)
        }
    }
}

pub fn delete(
    st: &mut State,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
) -> ApiResult<Value> {
    let old = get_existing(st, rt, ns, name)?;
    if let Some(uid) = &opts.uid {
        let actual = str_at(&old, &["metadata", "uid"]);
        if uid != actual {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        let actual = str_at(&old, &["metadata", "resourceVersion"]);
        if rv != actual {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    if opts.dry_run {
        return Ok(present(rt, &old));
    }
    let uid = str_at(&old, &["metadata", "uid"]).to_string();
    let propagation = opts
        .propagation
        .clone()
        .unwrap_or_else(|| "Background".into());
    if propagation == "Orphan" {
        orphan_dependents(st, &uid);
    }
    let mut finalizers: Vec<Value> = old
        .pointer("/metadata/finalizers")
        .and_then(|f| f.as_array())
        .cloned()
        .unwrap_or_default();
    if propagation == "Foreground" && has_dependents(st, &uid) {
        // Dependents go first; the owner follows once they are gone.
        delete_dependents(st, &uid);
        if has_dependents(st, &uid) && !finalizers.contains(&json!("foregroundDeletion")) {
            finalizers.push(json!("foregroundDeletion"));
        }
    }
    let old = get_existing(st, rt, ns, name)?;
    if !finalizers.is_empty() || rt.builtin == Some(Builtin::Namespace) {
        let mut marked = (*old).clone();
        if marked.pointer("/metadata/deletionTimestamp").is_none() {
            marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if !finalizers.is_empty() {
            marked["metadata"]["finalizers"] = Value::Array(finalizers);
        }
        if rt.builtin == Some(Builtin::Namespace) {
            marked["status"]["phase"] = json!("Terminating");
            let stored = if marked != *old {
                st.commit(&rt.storage, marked, EventType::Modified)
            } else {
                old.clone()
            };
            empty_namespace(st, name);
            maybe_finish_namespace(st, name);
            return Ok(present(rt, &stored));
        }
        if marked == *old {
            return Ok(present(rt, &old));
        }
        let stored = st.commit(&rt.storage, marked, EventType::Modified);
        return Ok(present(rt, &stored));
    }
    let out = present(rt, &old);
    really_delete(st, rt, &old);
    Ok(out)
}

/// Remove from storage and run the consequences (CRD instances, GC, namespace cleanup).
pub fn really_delete(st: &mut State, rt: &Arc<ResourceType>, obj: &Arc<Value>) {
    let ns = ns_of(obj).to_string();
    let name = name_of(obj).to_string();
    if st.get(&rt.storage, &ns, &name).is_none() {
        return;
    }
    let mut gone = (**obj).clone();
    gone["metadata"]["resourceVersion"] = json!(rv_of(obj).to_string());
    st.commit(&rt.storage, gone, EventType::Deleted);
    let uid = str_at(obj, &["metadata", "uid"]).to_string();
    if rt.builtin == Some(Builtin::Crd) {
        let group = obj
            .pointer("/spec/group")
            .and_then(|g| g.as_str())
            .unwrap_or("")
            .to_string();
        let plural = obj
            .pointer("/spec/names/plural")
            .and_then(|g| g.as_str())
            .unwrap_or("")
            .to_string();
        let key = (group, plural);
        let items: Vec<Arc<Value>> = st.list(&key, None);
        for it in items {
            st.commit(&key, (*it).clone(), EventType::Deleted);
        }
        st.objects.remove(&key);
        st.registry.remove_crd(&name);
        st.types_epoch += 1;
    }
    if rt.builtin == Some(Builtin::Namespace) {
        empty_namespace(st, &name);
    }
    delete_dependents(st, &uid);
    if !ns.is_empty() {
        maybe_finish_namespace(st, &ns);
    }
    // Owners waiting in foreground deletion.
    let owners: Vec<String> = obj
        .pointer("/metadata/ownerReferences")
        .and_then(|o| o.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(|u| u.as_str()).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for owner_uid in owners {
        if has_dependents(st, &owner_uid) {
            continue;
        }
        if let Some((ort, o)) = find_by_uid(st, &owner_uid) {
            let fins: Vec<Value> = o
                .pointer("/metadata/finalizers")
                .and_then(|f| f.as_array())
                .cloned()
                .unwrap_or_default();
            if o.pointer("/metadata/deletionTimestamp").is_some()
                && fins.contains(&json!("foregroundDeletion"))
            {
                let mut n = (*o).clone();
                let rest: Vec<Value> = fins
                    .into_iter()
                    .filter(|f| f != "foregroundDeletion")
                    .collect();
                n["metadata"]["finalizers"] = Value::Array(rest.clone());
                let stored = st.commit(&ort.storage, n, EventType::Modified);
                if rest.is_empty() {
                    really_delete(st, &ort, &stored);
                }
            }
        }
    }
}

fn find_by_uid(st: &State, uid: &str) -> Option<(Arc<ResourceType>, Arc<Value>)> {
    for (key, m) in &st.objects {
        for v in m.values() {
            if str_at(v, &["metadata", "uid"]) == uid {
                let rt = st.registry.by_storage(key).into_iter().next()?;
                return Some((rt, v.clone()));
            }
        }
    }
    None
}

fn dependents(st: &State, uid: &str) -> Vec<((String, String), Arc<Value>)> {
    let mut out = vec![];
    if uid.is_empty() {
        return out;
    }
    for (key, m) in &st.objects {
        for v in m.values() {
            if let Some(refs) = v
                .pointer("/metadata/ownerReferences")
                .and_then(|r| r.as_array())
            {
                if refs
                    .iter()
                    .any(|r| r.get("uid").and_then(|u| u.as_str()) == Some(uid))
                {
                    out.push((key.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn has_dependents(st: &State, uid: &str) -> bool {
    !dependents(st, uid).is_empty()
}

fn delete_dependents(st: &mut State, uid: &str) {
    for (key, dep) in dependents(st, uid) {
        let Some(rt) = st
            .registry
            .by_storage(&key)
            .into_iter()
            .find(|t| t.builtin != Some(Builtin::EventsEvent))
        else {
            continue;
        };
        if dep.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = ns_of(&dep).to_string();
        let _ = delete(st, &rt, Some(&ns), name_of(&dep), &DeleteOpts::default());
    }
}

fn orphan_dependents(st: &mut State, uid: &str) {
    for (key, dep) in dependents(st, uid) {
        let mut n = (*dep).clone();
        if let Some(refs) = n
            .pointer_mut("/metadata/ownerReferences")
            .and_then(|r| r.as_array_mut())
        {
            refs.retain(|r| r.get("uid").and_then(|u| u.as_str()) != Some(uid));
        }
        st.commit(&key, n, EventType::Modified);
    }
}

fn empty_namespace(st: &mut State, ns: &str) {
    let keys: Vec<(String, String)> = st.objects.keys().cloned().collect();
    for key in keys {
        let Some(rt) = st
            .registry
            .by_storage(&key)
            .into_iter()
            .find(|t| t.builtin != Some(Builtin::EventsEvent))
        else {
            continue;
        };
        if !rt.namespaced {
            continue;
        }
        for obj in st.list(&key, Some(ns)) {
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                let _ = delete(st, &rt, Some(ns), name_of(&obj), &DeleteOpts::default());
            }
        }
    }
}

fn maybe_finish_namespace(st: &mut State, ns: &str) {
    let nskey = (String::new(), "namespaces".to_string());
    let Some(nsobj) = st.get(&nskey, "", ns) else {
        return;
    };
    if nsobj.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    let empty = st.objects.iter().all(|(key, m)| {
        key == &nskey
            || m.range((ns.to_string(), String::new())..)
                .next()
                .is_none_or(|((n, _), _)| n != ns)
    });
    let user_fins = nsobj
        .pointer("/metadata/finalizers")
        .and_then(|f| f.as_array())
        .is_some_and(|a| !a.is_empty());
    if empty && !user_fins {
        if let Some(rt) = st.registry.get("", "v1", "namespaces") {
            really_delete(st, &rt, &nsobj);
        }
    }
}

pub struct ListOpts {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub rv: Option<String>,
    pub rv_match: Option<String>,
}

/// A LIST result: the matching stored objects (not yet presented) and the ListMeta.
pub struct RawList {
    pub items: Vec<Arc<Value>>,
    pub meta: Value,
}

/// Whether objects of `rt` are served exactly as stored (no view conversion).
pub fn served_as_stored(rt: &ResourceType, v: &Value) -> bool {
    rt.builtin != Some(Builtin::EventsEvent)
        && v.get("apiVersion").and_then(|a| a.as_str()) == Some(rt.api_version().as_str())
}

pub fn list_raw(
    st: &State,
    rt: &ResourceType,
    ns: Option<&str>,
    opts: &ListOpts,
) -> ApiResult<RawList> {
    use base64::Engine;
    use std::ops::Bound;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if opts.rv_match.as_deref() == Some("Exact") {
        let want: u64 = opts
            .rv
            .as_deref()
            .unwrap_or("")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?;
        if want != st.rv {
            return Err(ApiError::gone(format!(
                "too old resource version: {want} ({})",
                st.rv
            )));
        }
    }
    let ns = if rt.namespaced { ns } else { None };
    let mut lower: Bound<(String, String)> = match ns {
        Some(n) => Bound::Included((n.to_string(), String::new())),
        None => Bound::Unbounded,
    };
    if let Some(tok) = &opts.continue_token {
        let raw = b64
            .decode(tok)
            .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
        let v: Value = serde_json::from_slice(&raw)
            .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
        lower = Bound::Excluded((
            v["ns"].as_str().unwrap_or("").into(),
            v["name"].as_str().unwrap_or("").into(),
        ));
    }
    let mut out = vec![];
    let mut next: Option<Value> = None;
    let mut remaining = 0usize;
    if let Some(map) = st.objects.get(&rt.storage) {
        for ((ons, _), it) in map.range((lower, Bound::Unbounded)) {
            if let Some(n) = ns {
                if ons != n {
                    break;
                }
            }
            let ok = if served_as_stored(rt, it) {
                opts.label.matches(it) && opts.field.matches(it)
            } else {
                let view = present(rt, it);
                opts.label.matches(&view) && opts.field.matches(&view)
            };
            if !ok {
                continue;
            }
            if let Some(limit) = opts.limit {
                if limit > 0 && out.len() >= limit {
                    remaining += 1;
                    continue;
                }
            }
            next = Some(json!({"ns": ns_of(it), "name": name_of(it)}));
            out.push(it.clone());
        }
    }
    let mut meta = json!({"resourceVersion": st.rv.to_string()});
    if remaining > 0 {
        if let Some(n) = next {
            meta["continue"] = json!(b64.encode(n.to_string()));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(RawList { items: out, meta })
}

/// Serialises a LIST straight from the stored objects (no intermediate copies).
pub fn list_bytes(rt: &ResourceType, l: &RawList) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256 + l.items.len() * 512);
    buf.extend_from_slice(b"{\"kind\":");
    let _ = serde_json::to_writer(&mut buf, &rt.list_kind);
    buf.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut buf, &rt.api_version());
    buf.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut buf, &l.meta);
    buf.extend_from_slice(b",\"items\":[");
    for (i, it) in l.items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        if served_as_stored(rt, it) {
            let _ = serde_json::to_writer(&mut buf, &**it);
        } else {
            let _ = serde_json::to_writer(&mut buf, &present(rt, it));
        }
    }
    buf.extend_from_slice(b"]}");
    buf
}

pub fn list(st: &State, rt: &ResourceType, ns: Option<&str>, opts: &ListOpts) -> ApiResult<Value> {
    let l = list_raw(st, rt, ns, opts)?;
    let items: Vec<Value> = l.items.iter().map(|it| present(rt, it)).collect();
    Ok(json!({
        "kind": rt.list_kind,
        "apiVersion": rt.api_version(),
        "metadata": l.meta,
        "items": items,
    }))
}

//! HTTP front end: authentication, request-info parsing (like kube-apiserver's
//! RequestInfoFactory), RBAC, content negotiation (JSON/YAML bodies, `as=Table`,
//! PartialObjectMetadata) and dispatch to discovery, OpenAPI, the verbs and WATCH.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use super::Inner;
use super::error::{ApiError, ApiResult};
use super::ops::{self, DeleteOpts, FieldValidation, ListOpts, PatchKind, WriteOpts};
use super::rbac::{self, Attributes, Identity};
use super::registry::{Builtin, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::watch::{self, WatchOpts};
use super::{discovery, openapi, table};

pub fn router(inner: Arc<Inner>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(inner)
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    use futures::FutureExt;
    // A bug must still answer with a Status body (500), never a dropped connection.
    match std::panic::AssertUnwindSafe(handle_inner(inner, req))
        .catch_unwind()
        .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => {
            ApiError::internal("an error on the server has prevented the request from succeeding")
                .into_response()
        }
    }
}

fn json_response(status: StatusCode, v: &Value, warnings: &[String]) -> Response {
    let mut resp = (status, serde_json::to_vec(v).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, h);
        }
    }
    resp
}

fn ok(v: &Value) -> ApiResult<Response> {
    Ok(json_response(StatusCode::OK, v, &[]))
}

fn authenticate(inner: &Inner, headers: &HeaderMap) -> ApiResult<Identity> {
    let unauthorized = || ApiError::new(401, "Unauthorized", "Unauthorized");
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    // client-go sends no credentials over plain HTTP: an unauthenticated loopback request
    // is the admin (identities are then chosen by impersonation, see kubeconfig_yaml).
    let mut id = if auth.is_none() {
        Identity::admin()
    } else if auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(|t| t.trim())
        == Some(inner.admin_token.as_str())
    {
        Identity::admin()
    } else {
        let token = auth
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?
            .trim();
        let (ns, name) = inner.parse_sa_token(token).ok_or_else(unauthorized)?;
        Identity::service_account(&ns, &name)
    };
    if let Some(user) = headers
        .get("impersonate-user")
        .and_then(|h| h.to_str().ok())
    {
        if user == id.user {
            return Ok(id);
        }
        if !id.is_admin() {
            return Err(ApiError::forbidden(format!(
                "users \"{user}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                id.user
            )));
        }
        let mut groups: Vec<String> = headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(|h| h.to_str().ok().map(String::from))
            .collect();
        if let Some(rest) = user.strip_prefix("system:serviceaccount:") {
            if let Some((ns, _)) = rest.split_once(':') {
                groups.push("system:serviceaccounts".into());
                groups.push(format!("system:serviceaccounts:{ns}"));
            }
        }
        groups.push("system:authenticated".into());
        id = Identity {
            user: user.to_string(),
            groups,
        };
    }
    Ok(id)
}

struct ReqInfo {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: String,
}

fn parse_resource_path(path: &str) -> Option<ReqInfo> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.first()? {
        &"api" if parts.len() >= 2 => (String::new(), parts[1].to_string(), &parts[2..]),
        &"apis" if parts.len() >= 3 => (parts[1].to_string(), parts[2].to_string(), &parts[3..]),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    let mut rest: Vec<&str> = rest.to_vec();
    let mut namespace = None;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest = rest[2..].to_vec();
        } else {
            // The namespace object itself.
            let ns = rest[1];
            let sub = rest.get(2).copied().unwrap_or("");
            return Some(ReqInfo {
                group,
                version,
                namespace: None,
                resource: "namespaces".into(),
                name: Some(ns.to_string()),
                subresource: sub.to_string(),
            });
        }
    }
    Some(ReqInfo {
        group,
        version,
        namespace,
        resource: rest[0].to_string(),
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()).unwrap_or_default(),
    })
}

fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") {
        if let Some(v) = super::proto::decode(bytes) {
            return Ok(v);
        }
        return Err(ApiError::unsupported_media(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct})"
        )));
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    if ct.contains("yaml") {
        let v: serde_yaml::Value = serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        return serde_json::to_value(v).map_err(|e| ApiError::bad_request(e.to_string()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        // YAML is a superset of JSON; kubectl sometimes sends YAML as application/json? No: report.
        ApiError::bad_request(format!("error decoding body: {e}"))
    })
}

fn write_opts(q: &HashMap<String, String>, headers: &HeaderMap, sub: &str) -> ApiResult<WriteOpts> {
    let validation = match q.get("fieldValidation").map(|s| s.as_str()) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            )));
        }
    };
    let manager = match q.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ => {
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("unknown");
            ua.split('/').next().unwrap_or("unknown").to_string()
        }
    };
    Ok(WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        manager,
        validation,
        force: q.get("force").is_some_and(|f| f == "true"),
        subresource: sub.to_string(),
    })
}

enum Rendering {
    Full,
    Table(String),
    Partial,
}

fn rendering(headers: &HeaderMap, q: &HashMap<String, String>) -> Rendering {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let first = accept.split(',').next().unwrap_or("");
    if first.contains("as=Table") {
        return Rendering::Table(
            q.get("includeObject")
                .cloned()
                .unwrap_or_else(|| "Metadata".into()),
        );
    }
    if first.contains("as=PartialObjectMetadata") {
        return Rendering::Partial;
    }
    Rendering::Full
}

fn verb_of(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => {
            if watch {
                "watch"
            } else if has_name {
                "get"
            } else {
                "list"
            }
        }
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if has_name {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "unknown",
    }
}

async fn handle_inner(inner: Arc<Inner>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let headers = parts.headers;
    let method = parts.method;
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return Ok((StatusCode::OK, "ok").into_response());
    }
    let id = authenticate(&inner, &headers)?;
    let resource = parse_resource_path(&path);
    let enforced = inner.state.lock().rbac_enforced;
    let Some(ri) = resource else {
        if enforced && !id.is_admin() {
            let a = Attributes {
                verb: "get".into(),
                non_resource_path: Some(path.clone()),
                ..Default::default()
            };
            if !rbac::allowed(&inner.state.lock(), &id, &a) {
                return Err(rbac::forbidden(&id, &a));
            }
        }
        return non_resource(&inner, &path, &q);
    };
    let watch_flag = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = verb_of(&method, ri.name.is_some(), watch_flag);
    let rt = {
        let st = inner.state.lock();
        st.registry.get(&ri.group, &ri.version, &ri.resource)
    };
    let Some(rt) = rt else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if !rt.namespaced && ri.namespace.is_some() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if !ri.subresource.is_empty() && !(ri.subresource == "status" && rt.status) {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if enforced && !id.is_admin() {
        let a = Attributes {
            verb: verb.into(),
            group: ri.group.clone(),
            resource: ri.resource.clone(),
            subresource: ri.subresource.clone(),
            namespace: ri.namespace.clone().unwrap_or_default(),
            name: ri.name.clone().unwrap_or_default(),
            non_resource_path: None,
        };
        if !rbac::allowed(&inner.state.lock(), &id, &a) {
            return Err(rbac::forbidden(&id, &a));
        }
    }
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
    let ns = ri.namespace.as_deref();
    let name = ri.name.clone().unwrap_or_default();
    if rt.create_only {
        if method != Method::POST || ri.name.is_some() {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource"
            )));
        }
        let is_proto = headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|c| c.contains("protobuf"));
        let _ = is_proto;
        let body = parse_body(&headers, &bytes)?;
        let st = inner.state.lock();
        let out = match rt.builtin {
            Some(Builtin::SelfSubjectAccessReview) => {
                rbac::self_subject_access_review(&st, &id, &body)
            }
            Some(Builtin::SubjectAccessReview) => rbac::subject_access_review(&st, &body),
            Some(Builtin::SelfSubjectRulesReview) => {
                rbac::self_subject_rules_review(&st, &id, &body)
            }
            Some(Builtin::SelfSubjectReview) => rbac::self_subject_review(&id),
            _ => {
                let mut b = body.clone();
                b["status"] = json!({"authenticated": false});
                b
            }
        };
        return Ok(json_response(StatusCode::CREATED, &out, &[]));
    }
    match verb {
        "get" => {
            let obj = {
                let st = inner.state.lock();
                let found = ops::get_existing(&st, &rt, ns, &name)?;
                ops::present(&rt, &found)
            };
            match rendering(&headers, &q) {
                Rendering::Table(inc) => {
                    let rv = obj
                        .pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(json!(""));
                    ok(&table::table(
                        &rt,
                        &[obj],
                        json!({"resourceVersion": rv}),
                        &inc,
                    ))
                }
                Rendering::Partial => ok(&table::partial(&obj)),
                Rendering::Full => ok(&obj),
            }
        }
        "list" => {
            let lo = list_opts(&q)?;
            check_field_selector(&rt, &lo.field)?;
            let render = rendering(&headers, &q);
            if let Rendering::Full = render {
                let body = {
                    let st = inner.state.lock();
                    let l = ops::list_raw(&st, &rt, ns, &lo)?;
                    drop(st);
                    ops::list_bytes(&rt, &l)
                };
                let mut resp = (StatusCode::OK, body).into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(resp);
            }
            let list = {
                let st = inner.state.lock();
                ops::list(&st, &rt, ns, &lo)?
            };
            match render {
                Rendering::Table(inc) => {
                    let items = list["items"].as_array().cloned().unwrap_or_default();
                    ok(&table::table(&rt, &items, list["metadata"].clone(), &inc))
                }
                Rendering::Partial => {
                    let items: Vec<Value> = list["items"]
                        .as_array()
                        .map(|a| a.iter().map(table::partial).collect())
                        .unwrap_or_default();
                    ok(
                        &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"], "items": items}),
                    )
                }
                Rendering::Full => ok(&list),
            }
        }
        "watch" => {
            let lo = list_opts(&q)?;
            check_field_selector(&rt, &lo.field)?;
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(1800);
            let wo = WatchOpts {
                label: lo.label,
                field: lo.field,
                rv: q.get("resourceVersion").cloned(),
                send_initial_events: q.get("sendInitialEvents").is_some_and(|s| s == "true"),
                bookmarks: q.get("allowWatchBookmarks").is_some_and(|s| s == "true"),
                timeout: Duration::from_secs(timeout),
                partial_metadata: matches!(rendering(&headers, &q), Rendering::Partial),
                table: match rendering(&headers, &q) {
                    Rendering::Table(inc) => Some(inc),
                    _ => None,
                },
            };
            if wo.send_initial_events
                && q.get("resourceVersionMatch").map(|s| s.as_str()) != Some("NotOlderThan")
            {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    vec![super::error::Cause::new(
                        "FieldValueForbidden",
                        "resourceVersionMatch",
                        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    )],
                ));
            }
            let stream = watch::watch(inner.clone(), rt.clone(), ns.map(String::from), wo)?;
            let mut resp = Response::new(Body::from_stream(stream));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
            Ok(resp)
        }
        "create" => {
            let body = parse_body(&headers, &bytes)?;
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "the body of the request must be an object",
                ));
            }
            let opts = write_opts(&q, &headers, "")?;
            let mut warnings = vec![];
            let out =
                inner.write(|st| ops::create(st, &rt, ns, body, &opts, false, &mut warnings))?;
            Ok(json_response(StatusCode::CREATED, &out, &warnings))
        }
        "update" => {
            let body = parse_body(&headers, &bytes)?;
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "the body of the request must be an object",
                ));
            }
            let opts = write_opts(&q, &headers, &ri.subresource)?;
            let mut warnings = vec![];
            let out =
                inner.write(|st| ops::update(st, &rt, ns, &name, body, &opts, &mut warnings))?;
            Ok(json_response(StatusCode::OK, &out, &warnings))
        }
        "patch" => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string();
            let kind = if ct.starts_with("application/json-patch+json") {
                PatchKind::Json
            } else if ct.starts_with("application/merge-patch+json") {
                PatchKind::Merge
            } else if ct.starts_with("application/strategic-merge-patch+json") {
                if rt.builtin.is_none() {
                    return Err(ApiError::unsupported_media(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    )));
                }
                PatchKind::Strategic
            } else if ct.starts_with("application/apply-patch+yaml")
                || ct.starts_with("application/apply-patch+cbor")
            {
                PatchKind::Apply
            } else {
                return Err(ApiError::unsupported_media(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
                    if rt.builtin.is_some() {
                        ", application/strategic-merge-patch+json"
                    } else {
                        ""
                    }
                )));
            };
            let body: Value = if matches!(kind, PatchKind::Apply) {
                let y: serde_yaml::Value = serde_yaml::from_slice(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                serde_json::to_value(y).map_err(|e| ApiError::bad_request(e.to_string()))?
            } else {
                serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
            };
            let mut opts = write_opts(&q, &headers, &ri.subresource)?;
            if matches!(kind, PatchKind::Apply)
                && q.get("fieldManager").is_none_or(|m| m.is_empty())
            {
                opts.manager = String::new();
            }
            if !matches!(kind, PatchKind::Apply) && q.contains_key("force") {
                return Err(ApiError::bad_request(
                    "force: Forbidden: may not be specified for non-apply patch",
                ));
            }
            let mut warnings = vec![];
            let existed = inner
                .state
                .lock()
                .get(
                    &rt.storage,
                    if rt.namespaced { ns.unwrap_or("") } else { "" },
                    &name,
                )
                .is_some();
            let out = inner
                .write(|st| ops::patch(st, &rt, ns, &name, kind, &body, &opts, &mut warnings))?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(json_response(code, &out, &warnings))
        }
        "delete" => {
            let dopts = delete_opts(&q, &headers, &bytes)?;
            let out = inner.write(|st| ops::delete(st, &rt, ns, &name, &dopts))?;
            let still = inner
                .state
                .lock()
                .get(
                    &rt.storage,
                    if rt.namespaced { ns.unwrap_or("") } else { "" },
                    &name,
                )
                .is_some();
            // kube-apiserver answers 202 only when deletion is pending and the client asked
            // for cascading deletion with orphanDependents=false; otherwise 200.
            let orphan_false = q.get("orphanDependents").is_some_and(|o| o == "false")
                || (!bytes.is_empty()
                    && parse_body(&headers, &bytes)
                        .ok()
                        .and_then(|b| b.get("orphanDependents").and_then(|o| o.as_bool()))
                        == Some(false));
            let code = if still && !dopts.dry_run && orphan_false {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &out, &[]))
        }
        "deletecollection" => {
            let lo = list_opts(&q)?;
            let dopts = delete_opts(&q, &headers, &bytes)?;
            let out = inner.write(|st| {
                let list = ops::list(st, &rt, ns, &lo)?;
                let mut deleted = vec![];
                for it in list["items"].as_array().cloned().unwrap_or_default() {
                    let n = it.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("").to_string();
                    let ins = it.pointer("/metadata/namespace").and_then(|n| n.as_str()).map(String::from);
                    if let Ok(d) = ops::delete(st, &rt, ins.as_deref(), &n, &dopts) {
                        deleted.push(d);
                    }
                }
                Ok(json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": st.rv.to_string()}, "items": deleted}))
            })?;
            ok(&out)
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// Field selectors kube-apiserver supports: metadata.name/namespace everywhere, plus a few
/// per built-in kind; custom resources also get their CRD's `selectableFields`.
fn check_field_selector(rt: &ResourceType, sel: &FieldSelector) -> ApiResult<()> {
    use super::registry::Builtin::*;
    for f in sel.fields() {
        let ok = f == "metadata.name"
            || f == "metadata.namespace"
            || match rt.builtin {
                Some(CoreEvent) => {
                    f.starts_with("involvedObject.")
                        || ["reason", "reportingComponent", "source", "type"].contains(&f)
                }
                Some(EventsEvent) => {
                    f.starts_with("regarding.")
                        || ["reason", "reportingController", "type"].contains(&f)
                }
                Some(Secret) => f == "type",
                Some(Namespace) => f == "status.phase",
                Some(Pod) => [
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.nominatedNodeName",
                ]
                .contains(&f),
                Some(ReplicaSet) | Some(Job) => f == "status.replicas" || f == "status.successful",
                Some(Node) => f == "spec.unschedulable",
                None => rt.crd.as_ref().is_some_and(|c| {
                    c.selectable_fields
                        .iter()
                        .any(|s| s.trim_start_matches('.') == f)
                }),
                _ => false,
            };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {f}"
            )));
        }
    }
    Ok(())
}

fn list_opts(q: &HashMap<String, String>) -> ApiResult<ListOpts> {
    Ok(ListOpts {
        label: LabelSelector::parse(q.get("labelSelector").map(|s| s.as_str()).unwrap_or(""))?,
        field: FieldSelector::parse(q.get("fieldSelector").map(|s| s.as_str()).unwrap_or(""))?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        rv: q.get("resourceVersion").cloned(),
        rv_match: q.get("resourceVersionMatch").cloned(),
    })
}

fn delete_opts(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    bytes: &[u8],
) -> ApiResult<DeleteOpts> {
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        parse_body(headers, bytes)?
    };
    let mut d = DeleteOpts {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        uid: None,
        resource_version: None,
        propagation: q.get("propagationPolicy").cloned(),
    };
    if let Some(p) = body.get("preconditions") {
        d.uid = p.get("uid").and_then(|u| u.as_str()).map(String::from);
        d.resource_version = p
            .get("resourceVersion")
            .and_then(|u| u.as_str())
            .map(String::from);
    }
    if let Some(p) = body.get("propagationPolicy").and_then(|p| p.as_str()) {
        d.propagation = Some(p.to_string());
    }
    if let Some(o) = body.get("orphanDependents").and_then(|o| o.as_bool()) {
        if o {
            d.propagation = Some("Orphan".into());
        }
    }
    if body
        .get("dryRun")
        .and_then(|d| d.as_array())
        .is_some_and(|a| a.iter().any(|x| x == "All"))
    {
        d.dry_run = true;
    }
    Ok(d)
}

fn non_resource(
    inner: &Arc<Inner>,
    path: &str,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let path = path.trim_end_matches('/');
    let st = inner.state.lock();
    match path {
        "/version" => return ok(&discovery::version()),
        "/api" => return ok(&discovery::api_versions(&inner.server_addr.lock())),
        "/apis" => return ok(&discovery::api_group_list(&st.registry)),
        "/openapi/v3" => {
            drop(st);
            let idx = inner.openapi_index();
            return ok(&idx);
        }
        "/openapi/v2" => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        _ => {}
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", v] => discovery::api_resource_list(&st.registry, "", v)
            .map(|r| ok(&r))
            .unwrap_or_else(|| not_found()),
        ["apis", g] => discovery::api_group(&st.registry, g)
            .map(|r| ok(&r))
            .unwrap_or_else(|| not_found()),
        ["apis", g, v] => discovery::api_resource_list(&st.registry, g, v)
            .map(|r| ok(&r))
            .unwrap_or_else(|| not_found()),
        ["openapi", "v3", rest @ ..] => {
            drop(st);
            let key = rest.join("/");
            let _ = q;
            match inner.openapi_doc(&key) {
                Some(doc) => {
                    let mut resp = json_response(StatusCode::OK, &*doc, &[]);
                    resp.headers_mut().insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("no-cache, private"),
                    );
                    Ok(resp)
                }
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn not_found() -> ApiResult<Response> {
    Err(ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

pub fn _unused(_: &ResourceType) {}

/// Builds the `/openapi/v3` index and documents. Documents of group/versions served only by
/// built-in kinds never change, so they are kept in `builtin_cache` across rebuilds.
pub fn openapi_build(
    reg: &super::registry::Registry,
    builtin_cache: &mut HashMap<String, (Arc<Value>, String)>,
) -> (Value, HashMap<String, Arc<Value>>) {
    let mut docs = HashMap::new();
    let mut paths = serde_json::Map::new();
    for (g, v) in openapi::gv_list(reg) {
        let key = openapi::gv_path(&g, &v);
        let builtin_only = reg
            .in_group_version(&g, &v)
            .iter()
            .all(|t| t.builtin.is_some());
        let entry = match builtin_cache.get(&key) {
            Some(hit) if builtin_only => Some(hit.clone()),
            _ => openapi::gv_document(reg, &g, &v).map(|doc| {
                let h = openapi::hash(&doc);
                (Arc::new(doc), h)
            }),
        };
        if let Some((doc, h)) = entry {
            if builtin_only {
                builtin_cache.insert(key.clone(), (doc.clone(), h.clone()));
            }
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={h}")}),
            );
            docs.insert(key, doc);
        }
    }
    (json!({"paths": paths}), docs)
}

//! Authentication (admin token, minted service-account tokens, impersonation) and RBAC
//! authorization against stored Roles/ClusterRoles/bindings, with kube-apiserver's 403
//! body; SelfSubjectAccessReview / SubjectAccessReview / SelfSubjectReview answers.
use serde_json::{Value, json};

use super::error::ApiError;
use super::store::State;

#[derive(Clone, Debug)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn admin() -> Self {
        Identity {
            user: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }
    pub fn service_account(ns: &str, name: &str) -> Self {
        Identity {
            user: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// What a request wants to do.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub non_resource_path: Option<String>,
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule.get("verbs"));
    if !verbs.iter().any(|v| v == "*" || *v == a.verb) {
        return false;
    }
    if let Some(path) = &a.non_resource_path {
        return strs(rule.get("nonResourceURLs")).iter().any(|u| {
            u == "*" || u == path || (u.ends_with('*') && path.starts_with(&u[..u.len() - 1]))
        });
    }
    let groups = strs(rule.get("apiGroups"));
    if !groups.iter().any(|g| g == "*" || *g == a.group) {
        return false;
    }
    let full = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resources = strs(rule.get("resources"));
    let res_ok = resources.iter().any(|r| {
        r == "*"
            || *r == full
            || (a.subresource.is_empty() && *r == a.resource)
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
            || (!a.subresource.is_empty() && *r == format!("{}/*", a.resource))
    });
    if !res_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    names.is_empty() || (!a.name.is_empty() && names.iter().any(|n| *n == a.name))
}

fn subject_matches(s: &Value, id: &Identity) -> bool {
    let kind = s.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let name = s.get("name").and_then(|k| k.as_str()).unwrap_or("");
    match kind {
        "User" => id.user == name,
        "Group" => id.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s.get("namespace").and_then(|k| k.as_str()).unwrap_or("");
            id.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rbac_key(res: &str) -> (String, String) {
    ("rbac.authorization.k8s.io".to_string(), res.to_string())
}

/// Rules of a ClusterRole, including aggregated ones.
fn cluster_role_rules(st: &State, name: &str) -> Vec<Value> {
    let Some(cr) = st.get(&rbac_key("clusterroles"), "", name) else {
        return vec![];
    };
    let mut rules: Vec<Value> = cr
        .get("rules")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    if let Some(sels) = cr
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(|s| s.as_array())
    {
        for other in st.list(&rbac_key("clusterroles"), None) {
            if sels
                .iter()
                .any(|s| super::selectors::LabelSelector::from_object(s).matches(&other))
            {
                rules.extend(
                    other
                        .get("rules")
                        .and_then(|r| r.as_array())
                        .cloned()
                        .unwrap_or_default(),
                );
            }
        }
    }
    rules
}

fn role_ref_rules(st: &State, role_ref: &Value, ns: &str) -> Vec<Value> {
    let kind = role_ref.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let name = role_ref.get("name").and_then(|k| k.as_str()).unwrap_or("");
    match kind {
        "ClusterRole" => cluster_role_rules(st, name),
        "Role" => st
            .get(&rbac_key("roles"), ns, name)
            .and_then(|r| r.get("rules").and_then(|r| r.as_array()).cloned())
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// All rules that apply to `id` in `ns` ("" = cluster-wide only).
pub fn rules_for(st: &State, id: &Identity, ns: &str) -> Vec<Value> {
    let mut rules = vec![];
    for crb in st.list(&rbac_key("clusterrolebindings"), None) {
        let subjects = crb
            .get("subjects")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        if subjects.iter().any(|s| subject_matches(s, id)) {
            rules.extend(role_ref_rules(st, &crb["roleRef"], ""));
        }
    }
    if !ns.is_empty() {
        for rb in st.list(&rbac_key("rolebindings"), Some(ns)) {
            let subjects = rb
                .get("subjects")
                .and_then(|s| s.as_array())
                .cloned()
                .unwrap_or_default();
            if subjects.iter().any(|s| subject_matches(s, id)) {
                rules.extend(role_ref_rules(st, &rb["roleRef"], ns));
            }
        }
    }
    rules
}

pub fn allowed(st: &State, id: &Identity, a: &Attributes) -> bool {
    if id.is_admin() {
        return true;
    }
    if let Some(p) = &a.non_resource_path {
        // system:discovery / system:public-info-viewer.
        let public = [
            "/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz",
        ];
        if a.verb == "get"
            && public
                .iter()
                .any(|x| p == x || p.starts_with(&format!("{x}/")))
        {
            return true;
        }
    }
    if a.group == "authorization.k8s.io"
        && a.verb == "create"
        && (a.resource == "selfsubjectaccessreviews" || a.resource == "selfsubjectrulesreviews")
    {
        return true;
    }
    if a.group == "authentication.k8s.io"
        && a.verb == "create"
        && a.resource == "selfsubjectreviews"
    {
        return true;
    }
    rules_for(st, id, &a.namespace)
        .iter()
        .any(|r| rule_allows(r, a))
}

/// kube-apiserver's 403 body.
pub fn forbidden(id: &Identity, a: &Attributes) -> ApiError {
    if let Some(p) = &a.non_resource_path {
        return ApiError::forbidden(format!(
            "forbidden: User \"{}\" cannot {} path \"{p}\"",
            id.user, a.verb
        ));
    }
    let res = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let gr = if a.group.is_empty() {
        format!("resource \"{res}\" in API group \"\"")
    } else {
        format!("resource \"{res}\" in API group \"{}\"", a.group)
    };
    let what = if a.name.is_empty() {
        a.resource.clone()
    } else {
        format!(
            "{} \"{}\"",
            super::error::qualified(&a.resource, &a.group),
            a.name
        )
    };
    let subject = if a.name.is_empty() {
        super::error::qualified(&a.resource, &a.group)
    } else {
        what
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let mut e = ApiError::forbidden(format!(
        "{subject} is forbidden: User \"{}\" cannot {} {gr} {scope}",
        id.user, a.verb
    ));
    e.name = Some(a.name.clone());
    e.group = Some(a.group.clone());
    e.kind = Some(a.resource.clone());
    e
}

fn attrs_from_review(spec: &Value) -> Attributes {
    if let Some(nr) = spec.get("nonResourceAttributes") {
        return Attributes {
            verb: nr.get("verb").and_then(|v| v.as_str()).unwrap_or("").into(),
            non_resource_path: Some(nr.get("path").and_then(|v| v.as_str()).unwrap_or("").into()),
            ..Default::default()
        };
    }
    let ra = spec.get("resourceAttributes").cloned().unwrap_or(json!({}));
    let s = |k: &str| ra.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    Attributes {
        verb: s("verb"),
        group: s("group"),
        resource: s("resource"),
        subresource: s("subresource"),
        namespace: s("namespace"),
        name: s("name"),
        non_resource_path: None,
    }
}

pub fn self_subject_access_review(st: &State, id: &Identity, body: &Value) -> Value {
    let a = attrs_from_review(body.get("spec").unwrap_or(&Value::Null));
    let ok = allowed(st, id, &a);
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!("SelfSubjectAccessReview");
    if out.get("metadata").is_none() {
        out["metadata"] = json!({});
    }
    out["status"] = if ok {
        json!({"allowed": true, "reason": if id.is_admin() { "" } else { "RBAC: allowed" }})
    } else {
        json!({"allowed": false})
    };
    out
}

pub fn subject_access_review(st: &State, body: &Value) -> Value {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let id = Identity {
        user: spec
            .get("user")
            .and_then(|u| u.as_str())
            .unwrap_or("")
            .into(),
        groups: strs(spec.get("groups")),
    };
    let a = attrs_from_review(&spec);
    let ok = allowed(st, &id, &a);
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!("SubjectAccessReview");
    out["status"] = json!({"allowed": ok});
    out
}

pub fn self_subject_rules_review(st: &State, id: &Identity, body: &Value) -> Value {
    let ns = body
        .pointer("/spec/namespace")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    let rules = if id.is_admin() {
        vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})]
    } else {
        rules_for(st, id, ns)
    };
    let (res, nonres): (Vec<Value>, Vec<Value>) = rules
        .into_iter()
        .partition(|r| r.get("nonResourceURLs").is_none());
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!("SelfSubjectRulesReview");
    out["status"] = json!({"resourceRules": res, "nonResourceRules": nonres, "incomplete": false});
    out
}

pub fn self_subject_review(id: &Identity) -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": id.user, "groups": id.groups}},
    })
}

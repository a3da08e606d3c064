//! Registry of served resource types: the built-in kinds and the ones defined by CRDs.
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// How a built-in kind is normalised (k8s-openapi round trip) and strategic-merge patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Namespace,
    Secret,
    ConfigMap,
    ServiceAccount,
    Service,
    Pod,
    Endpoints,
    Pvc,
    ResourceQuota,
    LimitRange,
    Node,
    CoreEvent,
    EventsEvent,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    Lease,
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
    Crd,
    Pdb,
    NetworkPolicy,
    Ingress,
    IngressClass,
    Hpa,
    PriorityClass,
    ValidatingWebhook,
    MutatingWebhook,
    EndpointSlice,
    StorageClass,
    SelfSubjectAccessReview,
    SubjectAccessReview,
    SelfSubjectRulesReview,
    TokenReview,
    SelfSubjectReview,
}

/// A CRD version's schema information.
#[derive(Clone, Debug)]
pub struct CrdInfo {
    pub crd_name: String,
    pub schema: Option<Value>,
    pub printer_columns: Vec<Value>,
    /// `selectableFields` JSON paths (e.g. `.spec.color`).
    pub selectable_fields: Vec<String>,
    pub compiled: Option<Arc<kube_cel::CompiledSchema>>,
}

#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub list_kind: String,
    pub status: bool,
    pub builtin: Option<Builtin>,
    pub crd: Option<CrdInfo>,
    /// Storage key: group and plural of the stored collection (events share one).
    pub storage: (String, String),
    /// Only `create` (reviews).
    pub create_only: bool,
    /// Tracks metadata.generation.
    pub has_generation: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.create_only {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
    pub fn gk(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn bt(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    b: Builtin,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        list_kind: format!("{kind}List"),
        status,
        builtin: Some(b),
        crd: None,
        storage: (group.into(), plural.into()),
        create_only: false,
        has_generation: status,
    }
}

pub fn builtin_types() -> Vec<ResourceType> {
    use Builtin::*;
    let mut v = vec![
        bt(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            true,
            Namespace,
        ),
        bt("", "v1", "Secret", "secrets", true, &[], false, Secret),
        bt(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            ConfigMap,
        ),
        bt(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            ServiceAccount,
        ),
        bt(
            "",
            "v1",
            "Service",
            "services",
            true,
            &["svc"],
            true,
            Service,
        ),
        bt("", "v1", "Pod", "pods", true, &["po"], true, Pod),
        bt(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            &["ep"],
            false,
            Endpoints,
        ),
        bt(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            true,
            Pvc,
        ),
        bt(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            true,
            &["quota"],
            true,
            ResourceQuota,
        ),
        bt(
            "",
            "v1",
            "LimitRange",
            "limitranges",
            true,
            &["limits"],
            false,
            LimitRange,
        ),
        bt("", "v1", "Node", "nodes", false, &["no"], true, Node),
        bt("", "v1", "Event", "events", true, &["ev"], false, CoreEvent),
        bt(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            EventsEvent,
        ),
        bt(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            Deployment,
        ),
        bt(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            true,
            StatefulSet,
        ),
        bt(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            &["ds"],
            true,
            DaemonSet,
        ),
        bt(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            &["rs"],
            true,
            ReplicaSet,
        ),
        bt("batch", "v1", "Job", "jobs", true, &[], true, Job),
        bt(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            &["cj"],
            true,
            CronJob,
        ),
        bt(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            Lease,
        ),
        bt(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            false,
            Role,
        ),
        bt(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
            ClusterRole,
        ),
        bt(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
            RoleBinding,
        ),
        bt(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
            ClusterRoleBinding,
        ),
        bt(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            Crd,
        ),
        bt(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            true,
            Pdb,
        ),
        bt(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
            false,
            NetworkPolicy,
        ),
        bt(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            &["ing"],
            true,
            Ingress,
        ),
        bt(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
            &[],
            false,
            IngressClass,
        ),
        bt(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
            true,
            Hpa,
        ),
        bt(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            false,
            &["pc"],
            false,
            PriorityClass,
        ),
        bt(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            &[],
            false,
            ValidatingWebhook,
        ),
        bt(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            &[],
            false,
            MutatingWebhook,
        ),
        bt(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            &[],
            false,
            EndpointSlice,
        ),
        bt(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            false,
            &["sc"],
            false,
            StorageClass,
        ),
        bt(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            &[],
            false,
            SelfSubjectAccessReview,
        ),
        bt(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
            &[],
            false,
            SubjectAccessReview,
        ),
        bt(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
            &[],
            false,
            SelfSubjectRulesReview,
        ),
        bt(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
            &[],
            false,
            TokenReview,
        ),
        bt(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
            &[],
            false,
            SelfSubjectReview,
        ),
    ];
    for t in v.iter_mut() {
        if t.builtin == Some(EventsEvent) {
            t.storage = (String::new(), "events".into());
        }
        if matches!(
            t.builtin,
            Some(
                SelfSubjectAccessReview
                    | SubjectAccessReview
                    | SelfSubjectRulesReview
                    | TokenReview
                    | SelfSubjectReview
            )
        ) {
            t.create_only = true;
        }
        if matches!(
            t.builtin,
            Some(Namespace | Service | Node | Pvc | ResourceQuota)
        ) {
            t.has_generation = false;
        }
        if matches!(
            t.builtin,
            Some(Deployment | StatefulSet | DaemonSet | ReplicaSet | Job | CronJob | Pod)
        ) {
            t.categories = vec!["all".into()];
        }
        if matches!(t.builtin, Some(Service)) {
            t.categories = vec!["all".into()];
        }
        if t.builtin == Some(Endpoints) {
            t.singular = "endpoints".into();
        }
    }
    v
}

/// All served types, indexed by (group, version, plural).
#[derive(Clone, Default)]
pub struct Registry {
    pub types: BTreeMap<(String, String, String), Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for t in builtin_types() {
            r.insert(t);
        }
        r
    }
    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(
            (t.group.clone(), t.version.clone(), t.plural.clone()),
            Arc::new(t),
        );
    }
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }
    /// Any version of (group, kind); prefers the given version.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .values()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
    }
    pub fn by_storage(&self, storage: &(String, String)) -> Vec<Arc<ResourceType>> {
        self.types
            .values()
            .filter(|t| &t.storage == storage)
            .cloned()
            .collect()
    }
    pub fn remove_crd(&mut self, crd_name: &str) {
        self.types
            .retain(|_, t| t.crd.as_ref().map(|c| c.crd_name.as_str()) != Some(crd_name));
    }
    /// Group → versions (ordered, preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = vec![];
        for t in self.types.values() {
            if t.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| g == &t.group) {
                Some((_, vs)) => {
                    if !vs.contains(&t.version) {
                        vs.push(t.version.clone())
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, vs) in out.iter_mut() {
            vs.sort_by(|a, b| version_priority(b).cmp(&version_priority(a)));
        }
        out
    }
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .values()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }
}

/// Kubernetes version priority: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"^v(\d+)(?:(alpha|beta)(\d+))?$").unwrap());
    match re.captures(v) {
        Some(c) => {
            let major: u32 = c[1].parse().unwrap_or(0);
            let (lvl, minor) = match c.get(2).map(|m| m.as_str()) {
                None => (3, 0),
                Some("beta") => (2, c[3].parse().unwrap_or(0)),
                _ => (1, c[3].parse().unwrap_or(0)),
            };
            (lvl, major, minor)
        }
        None => (0, 0, 0),
    }
}

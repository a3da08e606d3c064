//! Authentication and RBAC: service-account clients, enforcement on/off, Role/RoleBinding
//! and ClusterRole/ClusterRoleBinding (incl. aggregation), verbs, resourceNames,
//! subresources and namespaces, kube-apiserver's 403 body, 401 for unknown tokens, and
//! SelfSubjectAccessReview answers.
mod kube_common;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube_common::*;
use serde_json::json;
use testbed::kube::KubeEmulator;

fn status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected API error, got {other:?}"),
    }
}

async fn apply_yaml(client: &kube::Client, uri: &str, body: serde_json::Value) {
    let (code, b) = raw(client, "POST", uri, "application/json", Some(body)).await;
    assert_eq!(code, 201, "{b}");
}

#[tokio::test]
async fn enforcement_roles_bindings_and_403_body() {
    let emu = KubeEmulator::new();
    let admin = emu.client();
    let bot = emu.client_for_service_account("default", "bot");
    let bot_cms: Api<ConfigMap> = Api::default_namespaced(bot.clone());
    // Off by default: anything goes.
    bot_cms.list(&ListParams::default()).await.unwrap();
    emu.set_rbac_enforced(true);
    let s = status(bot_cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(s.code, 403);
    assert_eq!(s.reason, "Forbidden");
    assert_eq!(
        s.message,
        r#"configmaps is forbidden: User "system:serviceaccount:default:bot" cannot list resource "configmaps" in API group "" in the namespace "default""#
    );
    assert_eq!(s.details.as_ref().unwrap().kind, "configmaps");
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    apply_yaml(&admin, &format!("{rb}/roles"), json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["mine"]},
                  {"apiGroups": ["example.com"], "resources": ["widgets/status"], "verbs": ["patch"]}]})).await;
    apply_yaml(&admin, &format!("{rb}/rolebindings"), json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}]})).await;
    bot_cms.list(&ListParams::default()).await.unwrap();
    let s = status(
        bot_cms
            .create(
                &PostParams::default(),
                &ConfigMap {
                    metadata: ObjectMeta {
                        name: Some("x".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap_err(),
    );
    assert!(
        s.message.contains("cannot create resource \"configmaps\""),
        "{}",
        s.message
    );
    // Other namespaces are not covered by a RoleBinding.
    let ks: Api<ConfigMap> = Api::namespaced(bot.clone(), "kube-system");
    assert_eq!(
        status(ks.list(&ListParams::default()).await.unwrap_err()).code,
        403
    );
    // resourceNames.
    let secrets: Api<Secret> = Api::default_namespaced(admin.clone());
    for n in ["mine", "theirs"] {
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(n.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let bot_secrets: Api<Secret> = Api::default_namespaced(bot.clone());
    bot_secrets.get("mine").await.unwrap();
    let s = status(bot_secrets.get("theirs").await.unwrap_err());
    assert_eq!(
        s.message,
        r#"secrets "theirs" is forbidden: User "system:serviceaccount:default:bot" cannot get resource "secrets" in API group "" in the namespace "default""#
    );
    assert_eq!(
        status(bot_secrets.list(&ListParams::default()).await.unwrap_err()).code,
        403
    );
    // Subresources are separate resources.
    install_widget_crd(&admin).await;
    let w: Api<Widget> = Api::default_namespaced(admin.clone());
    w.create(
        &PostParams::default(),
        &Widget::new(
            "w",
            WidgetSpec {
                size: 1,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    let bw: Api<Widget> = Api::default_namespaced(bot.clone());
    bw.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "x"}})),
    )
    .await
    .unwrap();
    let s = status(
        bw.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        s.message
            .contains(r#"cannot patch resource "widgets" in API group "example.com""#),
        "{}",
        s.message
    );
    // Unknown bearer token: 401.
    let (code, body) = raw(
        &admin,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let router = emu.router();
    let resp = tower::ServiceExt::oneshot(
        router,
        http::Request::builder()
            .uri("/api/v1/namespaces")
            .header("authorization", "Bearer sa.default.bot.0000")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn cluster_roles_aggregation_and_access_reviews() {
    let emu = KubeEmulator::new();
    let admin = emu.client();
    emu.set_rbac_enforced(true);
    let rb = "/apis/rbac.authorization.k8s.io/v1";
    apply_yaml(&admin, &format!("{rb}/clusterroles"), json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}, "rules": []})).await;
    apply_yaml(&admin, &format!("{rb}/clusterroles"), json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "part", "labels": {"agg": "yes"}}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]})).await;
    apply_yaml(&admin, &format!("{rb}/clusterrolebindings"), json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "crb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "agg"},
        "subjects": [{"kind": "ServiceAccount", "name": "ops", "namespace": "kube-system"}]})).await;
    let ops = emu.client_for_service_account("kube-system", "ops");
    let all: Api<Secret> = Api::all(ops.clone());
    all.list(&ListParams::default()).await.unwrap();
    let cms: Api<ConfigMap> = Api::all(ops.clone());
    let s = status(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        s.message,
        r#"configmaps is forbidden: User "system:serviceaccount:kube-system:ops" cannot list resource "configmaps" in API group "" at the cluster scope"#
    );
    // SelfSubjectAccessReview answers for the caller.
    let ssar = |verb: &str, res: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(res.into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(ops.clone());
    let yes = reviews
        .create(&PostParams::default(), &ssar("delete", "secrets"))
        .await
        .unwrap();
    assert!(yes.status.unwrap().allowed);
    let no = reviews
        .create(&PostParams::default(), &ssar("get", "configmaps"))
        .await
        .unwrap();
    assert!(!no.status.unwrap().allowed);
    let admin_reviews: Api<SelfSubjectAccessReview> = Api::all(admin.clone());
    assert!(
        admin_reviews
            .create(&PostParams::default(), &ssar("get", "configmaps"))
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
}

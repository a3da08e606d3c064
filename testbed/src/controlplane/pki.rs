//! The control plane's certificates and keys, generated with rcgen at start: a CA, the
//! apiserver's serving certificate (127.0.0.1, localhost, kubernetes.default.svc), client
//! certificates for the admin (`admin`, group `system:masters`) and for kube-controller-manager,
//! and the service-account signing key (ECDSA P-256), written as PEM files into a directory.
use std::path::{Path, PathBuf};

use anyhow::Result;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Paths of the PEM files (and their content where clients need it inline).
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub admin: ClientCert,
    pub controller_manager: ClientCert,
}

#[derive(Clone, Debug)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn serving_cert(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    pub fn serving_key(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    pub fn service_account_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    pub fn service_account_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// Generate everything into `dir` (created).
    pub fn generate(dir: &Path) -> Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "aoai-operator testbed Kubernetes CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;
        let ca_pem = ca_cert.pem();
        write(dir, "ca.crt", &ca_pem)?;
        write(dir, "ca.key", &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ])?;
        serving
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        serving
            .subject_alt_names
            .push(SanType::IpAddress([10, 0, 0, 1].into()));
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.use_authority_key_identifier_extension = true;
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = serving.signed_by(&key, &issuer)?;
        write(dir, "apiserver.crt", &cert.pem())?;
        write(dir, "apiserver.key", &key.serialize_pem())?;

        let admin = client_cert(&issuer, "admin", Some("system:masters"))?;
        let controller_manager = client_cert(&issuer, "system:kube-controller-manager", None)?;

        let sa = KeyPair::generate()?;
        write(dir, "sa.key", &sa.serialize_pem())?;
        write(dir, "sa.pub", &sa.public_key_pem())?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_pem,
            admin,
            controller_manager,
        })
    }
}

fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    group: Option<&str>,
) -> Result<ClientCert> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(g) = group {
        params.distinguished_name.push(DnType::OrganizationName, g);
    }
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer)?;
    Ok(ClientCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write(dir: &Path, name: &str, pem: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    if name.ends_with(".key") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// How a kubeconfig authenticates.
pub enum Credential<'a> {
    Cert(&'a ClientCert),
    Token(&'a str),
}

/// A kubeconfig with one cluster, user and context (`testbed`), CA inline.
pub fn kubeconfig_yaml(
    server: &str,
    ca_pem: &str,
    user: &str,
    credential: Credential<'_>,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth = match credential {
        Credential::Cert(c) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&c.cert_pem),
            b64(&c.key_pem)
        ),
        Credential::Token(t) => format!("    token: {t}\n"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n\
         users:\n- name: {user}\n  user:\n{auth}contexts:\n- name: testbed\n  context:\n    cluster: testbed\n    user: {user}\n    namespace: default\n\
         current-context: testbed\n",
        b64(ca_pem)
    )
}

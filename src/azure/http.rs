//! The shared HTTP client (rustls with the ring provider, Mozilla's roots plus an optional CA
//! bundle such as SSL_CERT_FILE) and the reading of every Azure response: its body, Retry-After,
//! ARM's remaining-budget headers, and the one place an Azure error is built and classified.

use crate::error::AzureError;
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Make ring the process's rustls crypto provider (once; a provider installed before stays):
/// clients built elsewhere in the process (the Kubernetes client, tests) need one too.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Build the client used for every Azure surface (ARM, Entra ID, Key Vault).
pub fn build_client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the CA bundle {} (SSL_CERT_FILE / --ca-file): {e}",
                path.display()
            )
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert
                .map_err(|e| format!("the CA bundle {} is not valid PEM: {e}", path.display()))?;
            roots.add(cert).map_err(|e| {
                format!(
                    "the CA bundle {} holds a bad certificate: {e}",
                    path.display()
                )
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "the CA bundle {} holds no certificate",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("aoai-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Parse Retry-After (seconds or HTTP date) and the retry-after-ms variants.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    for h in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok())
            && let Ok(ms) = v.trim().parse::<u64>()
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The smallest of ARM's `x-ms-ratelimit-remaining-subscription[-global]-{reads|writes|deletes}`.
pub fn ratelimit_remaining(headers: &reqwest::header::HeaderMap, kind: &str) -> Option<u64> {
    [
        format!("x-ms-ratelimit-remaining-subscription-{kind}"),
        format!("x-ms-ratelimit-remaining-subscription-global-{kind}"),
    ]
    .iter()
    .filter_map(|h| headers.get(h.as_str())?.to_str().ok()?.trim().parse().ok())
    .min()
}

/// Build the error from an Azure error body (`{"error":{"code","message"}}`, shared by ARM,
/// Key Vault and Entra ID's `{"error","error_description"}`), classified once, here.
pub fn error_from_body(
    operation: &str,
    status: u16,
    retry: Option<Duration>,
    body: &str,
) -> AzureError {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Option<serde_json::Value>,
        code: Option<String>,
        message: Option<String>,
        error_description: Option<String>,
    }
    let parsed: Option<Outer> = serde_json::from_str(body).ok();
    let (code, message) = match parsed {
        Some(Outer {
            error: Some(serde_json::Value::Object(i)),
            ..
        }) => (
            i.get("code").and_then(|v| v.as_str()).map(str::to_string),
            i.get("message")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        ),
        Some(Outer {
            error: Some(serde_json::Value::String(code)),
            error_description,
            ..
        }) => (Some(code), error_description),
        Some(Outer { code, message, .. }) => (code, message),
        None => (None, None),
    };
    let code = code.unwrap_or_else(|| match status {
        401 => "Unauthorized".into(),
        403 => "Forbidden".into(),
        404 => "NotFound".into(),
        409 => "Conflict".into(),
        429 => "TooManyRequests".into(),
        s if s >= 500 => "ServerError".into(),
        _ => format!("Http{status}"),
    });
    let message = message.unwrap_or_else(|| {
        let snippet: String = body.chars().take(200).collect();
        if snippet.is_empty() {
            format!("HTTP {status} with no body")
        } else {
            snippet
        }
    });
    AzureError::response(operation, status, code, message, retry)
}

/// A transport failure (no response): transient. Never includes URLs' query strings or tokens.
pub fn transport_error(operation: &str, e: &reqwest::Error) -> AzureError {
    let code = if e.is_timeout() {
        "Timeout"
    } else if e.is_connect() {
        "ConnectionError"
    } else {
        "TransportError"
    };
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    AzureError::transport(
        operation,
        code,
        format!("{msg} (check the endpoint, network and CA bundle)"),
    )
}

/// Response read fully, with the pieces callers need.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// Send a request, record metrics, and read the body.
pub async fn send(
    metrics: &Arc<Metrics>,
    operation: &str,
    write: bool,
    req: reqwest::RequestBuilder,
) -> Result<Resp, AzureError> {
    match req.send().await {
        Err(e) => {
            metrics.azure_request(operation, 0, write);
            Err(transport_error(operation, &e))
        }
        Ok(r) => {
            let status = r.status().as_u16();
            metrics.azure_request(operation, status, write);
            let headers = r.headers().clone();
            let body = r.text().await.map_err(|e| transport_error(operation, &e))?;
            tracing::debug!(operation, status, "azure request");
            Ok(Resp {
                status,
                headers,
                body,
            })
        }
    }
}

impl Resp {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn error(&self, operation: &str) -> AzureError {
        error_from_body(
            operation,
            self.status,
            retry_after(&self.headers),
            &self.body,
        )
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// The body of a GET whose target may be absent: `None` on 404, Azure's error on any other failure.
    pub fn json_unless_missing<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
    ) -> Result<Option<T>, AzureError> {
        if self.status == 404 {
            return Ok(None);
        }
        if !self.ok() {
            return Err(self.error(operation));
        }
        self.json(operation).map(Some)
    }
    /// The body of a successful response, or Azure's error.
    pub fn ok_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
    ) -> Result<T, AzureError> {
        if !self.ok() {
            return Err(self.error(operation));
        }
        self.json(operation)
    }
    pub fn json<T: serde::de::DeserializeOwned>(&self, operation: &str) -> Result<T, AzureError> {
        serde_json::from_str(&self.body).map_err(|e| {
            AzureError::invalid_response(
                operation,
                self.status,
                format!("cannot parse Azure's response: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    #[test]
    fn error_bodies_are_classified_where_they_are_read() {
        let e = error_from_body(
            "deployments.put",
            400,
            None,
            r#"{"error":{"code":"InsufficientQuota","message":"need 10, have 5"}}"#,
        );
        assert_eq!(e.code, "InsufficientQuota");
        assert_eq!(e.class, ErrorClass::Terminal);
        let e = error_from_body("x", 409, Some(Duration::from_secs(3)), "");
        assert_eq!(
            (e.code.as_str(), e.class),
            ("Conflict", ErrorClass::Transient)
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        let e = error_from_body("x", 503, None, "<html>");
        assert!(e.is_transient());
        let e = error_from_body(
            "token",
            400,
            None,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret"}"#,
        );
        assert_eq!(e.code, "invalid_client");
        assert!(e.message.starts_with("AADSTS7000215"));
    }

    #[test]
    fn retry_after_and_budget_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
        h.insert(
            "x-ms-ratelimit-remaining-subscription-reads",
            "249".parse().unwrap(),
        );
        h.insert(
            "x-ms-ratelimit-remaining-subscription-global-reads",
            "12000".parse().unwrap(),
        );
        assert_eq!(ratelimit_remaining(&h, "reads"), Some(249));
        assert_eq!(ratelimit_remaining(&h, "writes"), None);
    }
}

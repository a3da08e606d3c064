//! The shared HTTP client (rustls, webpki roots plus an optional CA bundle such as
//! SSL_CERT_FILE) and response helpers: Azure error bodies, Retry-After, metrics.

use crate::error::AzureError;
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Build the client used for every Azure surface.
pub fn build_client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("aoai-operator/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the CA bundle {} (SSL_CERT_FILE / --ca-file): {e}",
                path.display()
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("the CA bundle {} is not valid PEM: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "the CA bundle {} holds no certificate",
                path.display()
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
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
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(Duration::from_secs(secs))
}

/// Extract `{"error":{"code","message"}}` (ARM and Key Vault share this shape).
pub fn error_from_body(
    operation: &str,
    status: u16,
    retry: Option<Duration>,
    body: &str,
) -> AzureError {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Option<Inner>,
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
    }
    let parsed: Option<Outer> = serde_json::from_str(body).ok();
    let (code, message) = match parsed {
        Some(Outer { error: Some(i), .. }) => (i.code, i.message),
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
    AzureError {
        operation: operation.into(),
        status,
        code,
        message,
        retry_after: retry,
    }
}

/// Map a transport failure (no response) to a transient AzureError; never includes URLs' query or tokens.
pub fn transport_error(operation: &str, e: &reqwest::Error) -> AzureError {
    let code = if e.is_timeout() {
        "Timeout"
    } else if e.is_connect() {
        "ConnectionError"
    } else {
        "TransportError"
    };
    // reqwest's Display includes the URL (no secrets in our URLs); add the source chain.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    AzureError {
        operation: operation.into(),
        status: 0,
        code: code.into(),
        message: format!("{msg} (check the endpoint, network and CA bundle)"),
        retry_after: None,
    }
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
    let res = req.send().await;
    match res {
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
    pub fn json<T: serde::de::DeserializeOwned>(&self, operation: &str) -> Result<T, AzureError> {
        serde_json::from_str(&self.body).map_err(|e| AzureError {
            operation: operation.into(),
            status: self.status,
            code: "InvalidResponse".into(),
            message: format!("cannot parse Azure's response: {e}"),
            retry_after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let e = error_from_body(
            "deployments.put",
            400,
            None,
            r#"{"error":{"code":"InsufficientQuota","message":"need 10, have 5"}}"#,
        );
        assert_eq!(e.code, "InsufficientQuota");
        assert!(!e.is_transient());
        let e = error_from_body("x", 409, Some(Duration::from_secs(3)), "");
        assert!(e.is_transient());
        assert_eq!(e.code, "Conflict");
        let e = error_from_body("x", 503, None, "<html>");
        assert!(e.is_transient());
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}

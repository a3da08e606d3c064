//! The one Azure OpenAI data-plane call the operator makes: the `Verified` check of a Ready
//! deployment (`plan::verify`), a one-token chat completion or a one-word embedding with the
//! account key. Its answer is classified here, where it is read: answered, refused (with the
//! data plane's error), or transient (throttled, unavailable, unreachable). The key is sent
//! only to the account's own endpoint and never appears in an error.

use super::auth::Secret;
use crate::plan::verify::{Probe, ProbeOutcome};
use serde_json::{Value, json};

/// Call `deployment` on the account `endpoint` once.
pub async fn probe(
    http: &reqwest::Client,
    endpoint: &str,
    deployment: &str,
    api_version: &str,
    key: &Secret,
    probe: Probe,
) -> ProbeOutcome {
    let (path, body) = match probe {
        Probe::Chat => (
            "chat/completions",
            json!({"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}),
        ),
        Probe::Embedding => ("embeddings", json!({"input": "ping"})),
    };
    let url = format!(
        "{}openai/deployments/{deployment}/{path}?api-version={api_version}",
        super::cloud::with_slash(endpoint)
    );
    let resp = match http
        .post(url)
        .header("api-key", key.expose())
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return ProbeOutcome::Transient,
    };
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return ProbeOutcome::Answered;
    }
    if status == 408 || status == 429 || status >= 500 {
        return ProbeOutcome::Transient;
    }
    let text = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = v["error"]["code"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"));
    // The message is the data plane's; strip anything that could echo the key back.
    let message = message.replace(key.expose(), "<redacted>");
    ProbeOutcome::Refused { code, message }
}

//! The answers of the emulated Azure OpenAI data plane: a deterministic chat completion (it
//! echoes the last user message) and deterministic embeddings (unit vectors derived from a hash
//! of each input; `dimensions` honoured; `encoding_format: base64` as little-endian float32,
//! which the `openai` client asks for by default).
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Dimensions of an embedding when the request does not ask for fewer.
const DEFAULT_DIMENSIONS: usize = 1536;

pub(crate) fn chat(deployment: &str, body: &Value, request: &Value) -> Result<Value, String> {
    let Some(messages) = request["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err("'messages' is a required property".to_string());
    };
    let last = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| match &m["content"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => parts
                .iter()
                .find_map(|p| p["text"].as_str().map(str::to_string)),
            _ => None,
        })
        .unwrap_or_default();
    let model = &body["properties"]["model"];
    let model_name = model["name"].as_str().unwrap_or("model");
    let version = model["version"].as_str().unwrap_or("");
    let echo: String = last.chars().take(200).collect();
    let mut content =
        format!("Hello from deployment '{deployment}' ({model_name} {version}). You said: {echo}");
    let limit = request["max_tokens"]
        .as_u64()
        .or_else(|| request["max_completion_tokens"].as_u64());
    let mut finish = "stop";
    if let Some(n) = limit {
        let words: Vec<&str> = content.split_whitespace().collect();
        if (words.len() as u64) > n {
            content = words[..n as usize].join(" ");
            finish = "length";
        }
    }
    let prompt_tokens = messages
        .iter()
        .map(|m| m["content"].to_string().split_whitespace().count() as u64 + 4)
        .sum::<u64>();
    let completion_tokens = content.split_whitespace().count() as u64;
    Ok(json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": format!("{model_name}-{version}"),
        "system_fingerprint": "fp_testbed",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "finish_reason": finish,
            "logprobs": null,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }))
}

/// The inputs of an embeddings request as text (token arrays rendered as their numbers).
fn inputs(request: &Value) -> Result<Vec<String>, String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(tokens) if tokens.iter().all(Value::is_u64) => Some(
            tokens
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    };
    let list = match &request["input"] {
        Value::Array(items) if !items.is_empty() && !items.iter().all(Value::is_u64) => {
            items.iter().map(one).collect::<Option<Vec<_>>>()
        }
        v => one(v).map(|s| vec![s]),
    };
    list.filter(|l| !l.is_empty()).ok_or_else(|| {
        "'input' must be a string, an array of strings or an array of token arrays".to_string()
    })
}

/// A unit vector of `n` floats derived from `text`.
fn vector(text: &str, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    let mut block = 0u32;
    while out.len() < n {
        let digest = Sha256::new()
            .chain_update(block.to_le_bytes())
            .chain_update(text.as_bytes())
            .finalize();
        out.extend(digest.iter().map(|b| (*b as f32 - 127.5) / 127.5));
        block += 1;
    }
    out.truncate(n);
    let norm = out
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    out.iter().map(|x| x / norm).collect()
}

pub(crate) fn embeddings(body: &Value, request: &Value) -> Result<Value, String> {
    let texts = inputs(request)?;
    let n = match request["dimensions"].as_u64() {
        Some(d) if d == 0 || d as usize > DEFAULT_DIMENSIONS => {
            return Err(format!(
                "'dimensions' must be between 1 and {DEFAULT_DIMENSIONS}"
            ));
        }
        Some(d) => d as usize,
        None => DEFAULT_DIMENSIONS,
    };
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = vector(t, n);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = texts
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": body["properties"]["model"]["name"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

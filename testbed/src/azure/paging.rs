//! ARM list paging: a list answers at most `AzureConfig::list_page_size` items and, when more
//! remain, a `nextLink` to the same URL with an opaque `$skipToken` (the key of the last item
//! returned, base64url), so the pages stay consistent while items are added or removed between
//! calls. Every page is a GET of its own and so counts against the read bucket.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::Inner;
use super::arm::arm_error;
use super::server::{Req, Resp, json_response};

const SKIP_TOKEN: &str = "$skipToken";

/// Answers one page of `items` (key, JSON). Keys order the list and are unique.
pub(crate) fn page(inner: &Inner, req: &Req, mut items: Vec<(String, Value)>) -> Resp {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let after = match req.query(SKIP_TOKEN) {
        None => None,
        Some(t) => match B64
            .decode(t.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(k) => Some(k),
            None => {
                return arm_error(
                    400,
                    "InvalidSkipToken",
                    "The $skipToken of the request is invalid. Use the nextLink of the previous page as it was returned.",
                );
            }
        },
    };
    let size = inner.config.lock().list_page_size;
    let rest: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let take = if size == 0 {
        rest.len()
    } else {
        size.min(rest.len())
    };
    let more = take < rest.len();
    let last = rest[..take].last().map(|(k, _)| k.clone());
    let value: Vec<Value> = rest.into_iter().take(take).map(|(_, v)| v).collect();
    let mut body = json!({"value": value});
    if let (true, Some(last)) = (more, last) {
        body["nextLink"] = json!(next_link(inner, req, &last));
    }
    json_response(200, body)
}

/// Keys that keep a list in its insertion order (catalogs, usages).
pub(crate) fn ordinal(i: usize) -> String {
    format!("{i:08}")
}

fn next_link(inner: &Inner, req: &Req, last: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in req.query.iter().filter(|(k, _)| k != SKIP_TOKEN) {
        q.append_pair(k, v);
    }
    q.append_pair(SKIP_TOKEN, &B64.encode(last.as_bytes()));
    format!(
        "{}{}?{}",
        inner.main_url(),
        req.path.trim_start_matches('/'),
        q.finish()
    )
}

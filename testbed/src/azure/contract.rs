//! The official contract: loads the OpenAPI (Swagger 2.0) specs under `AZURE_SPECS_DIR`,
//! turns each operation's request-body and response schemas into JSON Schema (draft 4) by
//! resolving every `$ref` (common-types included) into one `definitions` map, and validates
//! JSON bodies with the `jsonschema` crate. Also matches request paths to operations and
//! finds the operation of an example file, for the example replay tests.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use super::server::{Req, Resp, json_response};
use super::{Inner, Surface};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecKind {
    Arm,
    KeyVault,
}

#[derive(Debug)]
pub struct Operation {
    pub id: String,
    pub method: String,
    pub template: String,
    segs: Vec<Option<String>>,
    /// Raw parameters, `$ref`s resolved (name, in, required, ...).
    pub params: Vec<Value>,
    pub body_param: Option<String>,
    /// The body parameter's OpenAPI schema and the file it is written in (converted lazily).
    pub body_schema: Option<(PathBuf, Value)>,
    /// Status code (or "default") → OpenAPI schema (None = no body), converted lazily.
    pub responses: BTreeMap<String, Option<Value>>,
    /// `x-ms-examples` file names (basename).
    pub examples: Vec<String>,
    pub long_running: bool,
}

#[derive(Debug)]
pub struct Spec {
    pub kind: SpecKind,
    pub api_version: String,
    pub file: PathBuf,
    pub ops: Vec<Operation>,
    /// Converts schemas on first use and holds the definitions converted so far.
    conv: Mutex<Converter>,
    canon: PathBuf,
}

impl Spec {
    /// Converts an OpenAPI schema written in `file` to JSON Schema; returns it with the
    /// definitions it may reference.
    fn converted(&self, raw: &Value, file: &Path) -> anyhow::Result<(Value, Map<String, Value>)> {
        let mut conv = self.conv.lock();
        let schema = conv.convert(raw, file)?;
        conv.drain()?;
        Ok((schema, conv.defs.clone()))
    }
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("defs", &self.defs.len())
            .finish()
    }
}

pub struct Contract {
    pub dir: PathBuf,
    pub specs: Vec<Spec>,
    cache: Mutex<HashMap<(usize, usize, String), Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("dir", &self.dir)
            .field("specs", &self.specs.len())
            .finish()
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

/// Resolves a specs folder: as given (absolute or relative to the current directory), else
/// relative to the workspace root (the test command sets `../shared/azure-specs` from there,
/// while test binaries run in their package folder). None when it does not exist.
pub fn resolve_specs_dir(dir: &Path) -> Option<PathBuf> {
    if dir.is_dir() {
        return Some(dir.to_path_buf());
    }
    if dir.is_relative() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
        let candidate = root.join(dir);
        if candidate.is_dir() {
            return Some(candidate);
        }
    }
    None
}

/// The specs folder from env `AZURE_SPECS_DIR`, resolved.
pub fn specs_dir_from_env() -> Option<PathBuf> {
    resolve_specs_dir(Path::new(&std::env::var_os("AZURE_SPECS_DIR")?))
}

/// Every example file under `dir` (files in an `examples` folder).
pub fn example_files(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(dir, &mut all);
    all.into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "examples"))
        .collect()
}

/// Converts OpenAPI schemas to JSON Schema, collecting referenced definitions.
struct Converter {
    files: HashMap<PathBuf, (usize, Value)>,
    canonical: HashMap<PathBuf, PathBuf>,
    defs: Map<String, Value>,
    queue: VecDeque<(PathBuf, String, String)>,
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl Converter {
    fn file(&mut self, path: &Path) -> anyhow::Result<(usize, PathBuf)> {
        let canon =
            std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
        if !self.files.contains_key(&canon) {
            let doc = read_json(&canon)?;
            let idx = self.files.len();
            self.files.insert(canon.clone(), (idx, doc));
        }
        Ok((self.files[&canon].0, canon))
    }

    /// Splits a `$ref` into (file, JSON pointer) relative to `from`.
    fn locate(&mut self, reference: &str, from: &Path) -> anyhow::Result<(PathBuf, String)> {
        let (rel, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let target = if rel.is_empty() {
            from.to_path_buf()
        } else {
            from.parent().unwrap_or(Path::new(".")).join(rel)
        };
        let (_, canon) = self.file(&target)?;
        Ok((canon, pointer.to_string()))
    }

    fn resolve(&mut self, reference: &str, from: &Path) -> anyhow::Result<(PathBuf, Value)> {
        let (file, pointer) = self.locate(reference, from)?;
        let value = self.files[&file]
            .1
            .pointer(&pointer)
            .cloned()
            .with_context(|| format!("unresolved $ref {reference} from {}", from.display()))?;
        Ok((file, value))
    }

    fn convert(&mut self, schema: &Value, from: &Path) -> anyhow::Result<Value> {
        Ok(match schema {
            Value::Object(obj) => {
                if let Some(Value::String(r)) = obj.get("$ref") {
                    let (file, pointer) = self.locate(r, from)?;
                    let name = pointer
                        .strip_prefix("/definitions/")
                        .with_context(|| format!("unsupported $ref {r}"))?
                        .to_string();
                    let idx = self.files[&file].0;
                    let key = format!("f{idx}.{name}");
                    if !self.defs.contains_key(&key) {
                        self.defs.insert(key.clone(), Value::Null);
                        self.queue.push_back((file, name, key.clone()));
                    }
                    let mut out =
                        json!({"$ref": format!("#/definitions/{}", escape_pointer(&key))});
                    if obj.get("x-nullable") == Some(&Value::Bool(true)) {
                        out = json!({"anyOf": [out, {"type": "null"}]});
                    }
                    return Ok(out);
                }
                let mut out = Map::new();
                for (k, v) in obj {
                    match k.as_str() {
                        "properties" | "definitions" | "patternProperties" => {
                            let mut props = Map::new();
                            if let Value::Object(p) = v {
                                for (pk, pv) in p {
                                    props.insert(pk.clone(), self.convert(pv, from)?);
                                }
                            }
                            out.insert(k.clone(), Value::Object(props));
                        }
                        "items" | "additionalProperties" | "not" => {
                            out.insert(k.clone(), self.convert(v, from)?);
                        }
                        "allOf" | "anyOf" | "oneOf" => {
                            let items = v
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .map(|s| self.convert(s, from))
                                        .collect::<anyhow::Result<Vec<_>>>()
                                })
                                .transpose()?
                                .unwrap_or_default();
                            out.insert(k.clone(), Value::Array(items));
                        }
                        "discriminator" | "example" | "x-ms-secret" => {}
                        "enum" => {
                            // Extensible enums (x-ms-enum modelAsString) accept any string.
                            let extensible = obj["x-ms-enum"]["modelAsString"] == Value::Bool(true);
                            if !extensible {
                                out.insert(k.clone(), v.clone());
                            }
                        }
                        "type" if v == "file" => {}
                        _ => {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                }
                if obj.get("x-nullable") == Some(&Value::Bool(true))
                    && let Some(Value::String(t)) = out.get("type").cloned()
                {
                    out.insert("type".into(), json!([t, "null"]));
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        while let Some((file, name, key)) = self.queue.pop_front() {
            let raw = self.files[&file]
                .1
                .pointer(&format!("/definitions/{}", escape_pointer(&name)))
                .cloned()
                .with_context(|| format!("missing definition {name} in {}", file.display()))?;
            let converted = self.convert(&raw, &file)?;
            self.defs.insert(key, converted);
        }
        Ok(())
    }
}

impl Contract {
    /// `load`, memoized per folder for the process (emulators started by one test binary
    /// share the parsed specs and compiled validators).
    pub fn load_shared(dir: &Path) -> anyhow::Result<Arc<Contract>> {
        static SHARED: std::sync::OnceLock<Mutex<HashMap<PathBuf, Arc<Contract>>>> =
            std::sync::OnceLock::new();
        let shared = SHARED.get_or_init(|| Mutex::new(HashMap::new()));
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if let Some(c) = shared.lock().get(&key) {
            return Ok(c.clone());
        }
        let contract = Arc::new(Contract::load(dir)?);
        shared.lock().insert(key, contract.clone());
        Ok(contract)
    }

    /// Loads every spec (Swagger file outside `examples`) under `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Contract> {
        let mut files = Vec::new();
        walk(dir, &mut files);
        let mut specs = Vec::new();
        for path in files
            .iter()
            .filter(|p| !p.components().any(|c| c.as_os_str() == "examples"))
        {
            let doc = read_json(path)?;
            if doc.get("swagger").is_none() || doc["paths"].as_object().is_none_or(|p| p.is_empty())
            {
                continue;
            }
            specs.push(Self::load_spec(path, &doc)?);
        }
        anyhow::ensure!(
            !specs.is_empty(),
            "no OpenAPI specs found under {}",
            dir.display()
        );
        Ok(Contract {
            dir: dir.to_path_buf(),
            specs,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn load_spec(path: &Path, doc: &Value) -> anyhow::Result<Spec> {
        let kind = kind_of(path);
        let api_version = doc["info"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut conv = Converter {
            files: HashMap::new(),
            canonical: HashMap::new(),
            defs: Map::new(),
            queue: VecDeque::new(),
        };
        let canon = std::fs::canonicalize(path)?;
        // The document is already parsed: hand the converter a copy instead of re-reading it.
        conv.canonical.insert(path.to_path_buf(), canon.clone());
        conv.files.insert(canon.clone(), (0, doc.clone()));
        let mut ops = Vec::new();
        let empty = Map::new();
        let paths = doc["paths"].as_object().unwrap_or(&empty);
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let common: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (method, op) in item {
                if method == "parameters" || !op.is_object() {
                    continue;
                }
                let mut params = Vec::new();
                let mut body_param = None;
                let mut body_schema = None;
                let all: Vec<Value> = common
                    .iter()
                    .chain(op["parameters"].as_array().into_iter().flatten())
                    .cloned()
                    .collect();
                for p in all {
                    let (pfile, p) = match p.get("$ref").and_then(Value::as_str) {
                        Some(r) => conv.resolve(r, &canon)?,
                        None => (canon.clone(), p),
                    };
                    if p["in"] == "body" {
                        body_param = p["name"].as_str().map(str::to_string);
                        body_schema = Some((pfile.clone(), p["schema"].clone()));
                    }
                    params.push(p);
                }
                let mut responses = BTreeMap::new();
                for (code, r) in op["responses"].as_object().unwrap_or(&empty) {
                    responses.insert(code.clone(), r.get("schema").cloned());
                }
                let examples = op["x-ms-examples"]
                    .as_object()
                    .map(|m| {
                        m.values()
                            .filter_map(|v| v["$ref"].as_str())
                            .filter_map(|r| r.rsplit('/').next().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let segs = template
                    .trim_matches('/')
                    .split('/')
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            None
                        } else {
                            Some(s.to_ascii_lowercase())
                        }
                    })
                    .collect();
                ops.push(Operation {
                    id: op["operationId"].as_str().unwrap_or_default().to_string(),
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    segs,
                    params,
                    body_param,
                    body_schema,
                    responses,
                    examples,
                    long_running: op["x-ms-long-running-operation"] == Value::Bool(true),
                });
            }
        }
        conv.drain()?;
        Ok(Spec {
            kind,
            api_version,
            file: path.to_path_buf(),
            ops,
            conv: Mutex::new(conv),
            canon,
        })
    }

    pub fn api_versions(&self, kind: SpecKind) -> Vec<String> {
        self.specs
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.api_version.clone())
            .collect()
    }

    /// The operation a request hits: (spec index, operation index).
    pub fn find(
        &self,
        kind: SpecKind,
        api_version: &str,
        method: &str,
        path: &str,
    ) -> Option<(usize, usize)> {
        let si = self
            .specs
            .iter()
            .position(|s| s.kind == kind && s.api_version == api_version)?;
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let mut best: Option<(usize, usize)> = None;
        for (oi, op) in self.specs[si].ops.iter().enumerate() {
            if !op.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let trimmed: &[String] =
                if segs.len() == op.segs.len() + 1 && segs.last().is_some_and(String::is_empty) {
                    &segs[..segs.len() - 1]
                } else {
                    &segs
                };
            let matches = |s: &[String]| {
                s.len() == op.segs.len()
                    && op
                        .segs
                        .iter()
                        .zip(s)
                        .enumerate()
                        .all(|(i, (t, p))| match t {
                            Some(lit) => lit == p,
                            None => !p.is_empty() || i == s.len() - 1,
                        })
            };
            if matches(&segs) || matches(trimmed) {
                let literals = op.segs.iter().filter(|s| s.is_some()).count();
                if best.is_none_or(|(_, l)| literals > l) {
                    best = Some((oi, literals));
                }
            }
        }
        best.map(|(oi, _)| (si, oi))
    }

    pub fn operation(&self, at: (usize, usize)) -> (&Spec, &Operation) {
        let spec = &self.specs[at.0];
        (spec, &spec.ops[at.1])
    }

    /// The request an example file documents, for replaying it: the operation's method, its
    /// path template filled from the example's parameters (or `overrides`, by parameter name),
    /// the query string (api-version of the spec first) and the body parameter.
    pub fn example_request(
        &self,
        at: (usize, usize),
        example: &Value,
        overrides: &[(String, String)],
    ) -> ExampleRequest {
        let (spec, op) = self.operation(at);
        let params = &example["parameters"];
        let mut path = op.template.clone();
        let mut query = vec![format!("api-version={}", spec.api_version)];
        let mut body = None;
        for param in &op.params {
            let name = param["name"].as_str().unwrap_or("");
            let value = overrides
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| Value::String(v.clone()))
                .or_else(|| params.get(name).cloned());
            match param["in"].as_str() {
                Some("path") => {
                    let v = value.as_ref().and_then(Value::as_str).unwrap_or("");
                    path = path.replace(&format!("{{{name}}}"), v);
                }
                Some("query") if name != "api-version" => {
                    if let Some(v) = value {
                        let s = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        let encoded: String =
                            url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
                        query.push(format!("{name}={encoded}"));
                    }
                }
                Some("body") => body = value,
                _ => {}
            }
        }
        ExampleRequest {
            method: op.method.clone(),
            path_and_query: format!("{}?{}", path.trim_start_matches('/'), query.join("&")),
            body,
        }
    }

    /// What a replayed example's response gets wrong: a status the example does not
    /// document, a body that does not validate, fields of the example's body it lacks, or a
    /// documented header it lacks (`has_header` gets lower-case names).
    pub fn example_response_problems(
        &self,
        at: (usize, usize),
        example: &Value,
        status: u16,
        body: &Value,
        has_header: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let (_, op) = self.operation(at);
        let responses = example["responses"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let Some(documented) = responses.get(&status.to_string()) else {
            return vec![format!(
                "{}: status {status} not in the example's responses {:?}: {body:?}",
                op.id,
                responses.keys().collect::<Vec<_>>()
            )];
        };
        let mut problems = Vec::new();
        let actual = (!body.is_null()).then_some(body);
        if let Err(errs) = self.validate_response(at, status, actual) {
            problems.push(format!("{}: response does not validate: {errs:?}", op.id));
        }
        if let Some(expected) = documented.get("body") {
            let missing = self.missing_fields(at, status, expected, body);
            if !missing.is_empty() {
                problems.push(format!(
                    "{}: response lacks fields of the example: {missing:?}",
                    op.id
                ));
            }
        }
        for h in documented["headers"]
            .as_object()
            .into_iter()
            .flat_map(|h| h.keys())
        {
            if !has_header(&h.to_ascii_lowercase()) {
                problems.push(format!("{}: response lacks header {h}", op.id));
            }
        }
        problems
    }

    /// Finds the operation an example file documents: by `operationId` and api-version folder,
    /// else by the spec's `x-ms-examples` file name.
    pub fn example_operation(&self, file: &Path, example: &Value) -> Option<(usize, usize)> {
        let kind = kind_of(file);
        let folder_version = file
            .parent()?
            .parent()?
            .file_name()?
            .to_string_lossy()
            .to_string();
        let name = file.file_name()?.to_string_lossy().to_string();
        let candidates: Vec<usize> = {
            let mut c: Vec<usize> = (0..self.specs.len())
                .filter(|&i| self.specs[i].kind == kind)
                .collect();
            // Prefer the spec of the same api-version, then the newest.
            c.sort_by_key(|&i| {
                (
                    self.specs[i].api_version != folder_version,
                    std::cmp::Reverse(self.specs[i].api_version.clone()),
                )
            });
            c
        };
        for si in candidates {
            let spec = &self.specs[si];
            let found = match example["operationId"].as_str() {
                Some(id) => spec.ops.iter().position(|o| o.id == id),
                None => spec.ops.iter().position(|o| o.examples.contains(&name)),
            };
            if let Some(oi) = found {
                return Some((si, oi));
            }
        }
        None
    }

    fn validator(&self, at: (usize, usize), which: &str) -> Option<Arc<jsonschema::Validator>> {
        let key = (at.0, at.1, which.to_string());
        if let Some(v) = self.cache.lock().get(&key) {
            return Some(v.clone());
        }
        let (spec, op) = self.operation(at);
        let (file, raw) = if which == "request" {
            op.body_schema.clone()?
        } else {
            (spec.canon.clone(), op.responses.get(which)?.clone()?)
        };
        let (schema, defs) = match spec.converted(&raw, &file) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("cannot convert schema for {} {which}: {e:#}", op.id);
                return None;
            }
        };
        let doc = json!({"allOf": [schema], "definitions": Value::Object(defs)});
        let validator = match jsonschema::draft4::options()
            .should_validate_formats(false)
            .build(&doc)
        {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::error!("cannot compile schema for {} {which}: {e}", op.id);
                return None;
            }
        };
        self.cache.lock().insert(key, validator.clone());
        Some(validator)
    }

    /// Validation errors; values are left out of the messages (a body may carry a key or a
    /// secret), only the failing rule and where it failed.
    fn errors(validator: &jsonschema::Validator, body: &Value) -> Vec<String> {
        validator
            .iter_errors(body)
            .take(5)
            .map(|e| {
                format!(
                    "'{}' fails the schema rule '{}'",
                    e.instance_path(),
                    e.schema_path()
                )
            })
            .collect()
    }

    /// Fields of `example` (a documented response body) missing from `actual`, walking the
    /// response schema: declared properties must be present; keys of map-typed objects
    /// (`additionalProperties`) are data, not shape.
    pub fn missing_fields(
        &self,
        at: (usize, usize),
        status: u16,
        example: &Value,
        actual: &Value,
    ) -> Vec<String> {
        let (spec, op) = self.operation(at);
        let Some(Some(raw)) = op.responses.get(&status.to_string()) else {
            return Vec::new();
        };
        let Ok((schema, defs)) = spec.converted(raw, &spec.canon) else {
            return vec![format!(
                "{}: the response schema cannot be converted",
                op.id
            )];
        };
        let mut out = Vec::new();
        shape(&defs, &schema, example, actual, "$", &mut out, 0);
        out
    }

    /// Validates a request body against the operation's body parameter schema.
    pub fn validate_request(&self, at: (usize, usize), body: &Value) -> Result<(), Vec<String>> {
        let (_, op) = self.operation(at);
        if op.body_schema.is_none() {
            return Ok(());
        }
        let required = op
            .params
            .iter()
            .any(|p| p["in"] == "body" && p["required"] == Value::Bool(true));
        if body.is_null() {
            return if required {
                Err(vec![format!("{}: the request body is required", op.id)])
            } else {
                Ok(())
            };
        }
        let Some(v) = self.validator(at, "request") else {
            return Ok(());
        };
        let errs = Self::errors(&v, body);
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Validates a response: the status must be declared (or be an error covered by
    /// `default`), and a JSON body must match the declared schema.
    pub fn validate_response(
        &self,
        at: (usize, usize),
        status: u16,
        body: Option<&Value>,
    ) -> Result<(), Vec<String>> {
        let (_, op) = self.operation(at);
        let code = status.to_string();
        let which = if op.responses.contains_key(&code) {
            code
        } else if status >= 400 && op.responses.contains_key("default") {
            "default".to_string()
        } else {
            return Err(vec![format!(
                "{}: status {status} is not a declared response ({:?})",
                op.id,
                op.responses.keys().collect::<Vec<_>>()
            )]);
        };
        let schema = op.responses.get(&which).cloned().flatten();
        match (schema, body) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(vec![format!(
                "{}: status {status} declares a body but none was sent",
                op.id
            )]),
            (Some(_), Some(body)) => {
                let Some(v) = self.validator(at, &which) else {
                    return Ok(());
                };
                let errs = Self::errors(&v, body);
                if errs.is_empty() { Ok(()) } else { Err(errs) }
            }
        }
    }
}

fn deref<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let key = r
                    .trim_start_matches("#/definitions/")
                    .replace("~1", "/")
                    .replace("~0", "~");
                match defs.get(&key) {
                    Some(s) => schema = s,
                    None => return schema,
                }
            }
            None => return schema,
        }
    }
    schema
}

/// Declared properties (own and through allOf) and whether the object is a map.
fn properties<'a>(
    defs: &'a Map<String, Value>,
    schema: &'a Value,
    out: &mut Map<String, Value>,
    map: &mut bool,
    depth: usize,
) {
    let schema = deref(defs, schema);
    if depth > 16 {
        return;
    }
    if let Some(p) = schema["properties"].as_object() {
        for (k, v) in p {
            out.insert(k.clone(), v.clone());
        }
    }
    if schema
        .get("additionalProperties")
        .is_some_and(|a| a.is_object())
    {
        *map = true;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        properties(defs, part, out, map, depth + 1);
    }
}

fn shape(
    defs: &Map<String, Value>,
    schema: &Value,
    example: &Value,
    actual: &Value,
    at: &str,
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > 24 {
        return;
    }
    let schema = deref(defs, schema);
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut props = Map::new();
            let mut map = false;
            properties(defs, schema, &mut props, &mut map, 0);
            for (k, v) in e {
                match (props.get(k), a.get(k)) {
                    (Some(ps), Some(av)) => {
                        shape(defs, ps, v, av, &format!("{at}.{k}"), out, depth + 1)
                    }
                    (Some(_), None) => out.push(format!("{at}.{k}")),
                    (None, _) if map => {}
                    (None, Some(_)) => {}
                    (None, None) => out.push(format!("{at}.{k} (undeclared)")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            match (e.first(), a.first()) {
                (Some(e0), Some(a0)) => {
                    shape(defs, &items, e0, a0, &format!("{at}[0]"), out, depth + 1)
                }
                (Some(_), None) => out.push(format!("{at}[] (empty)")),
                _ => {}
            }
        }
        (Value::Object(_) | Value::Array(_), _) => out.push(format!("{at} (type)")),
        _ => {}
    }
}

/// A request rebuilt from an example file (`Contract::example_request`).
#[derive(Clone, Debug)]
pub struct ExampleRequest {
    pub method: String,
    /// Relative to the service's base URL (no leading slash).
    pub path_and_query: String,
    pub body: Option<Value>,
}

/// Key Vault for files under a `keyvault` folder, ARM otherwise.
pub fn kind_of(path: &Path) -> SpecKind {
    if path.to_string_lossy().contains("keyvault") {
        SpecKind::KeyVault
    } else {
        SpecKind::Arm
    }
}

/// The JSON body of a response built by `json_response`.
#[derive(Clone, Debug)]
pub(crate) struct ResponseJson(pub Value);

fn spec_kind(surface: Surface) -> Option<SpecKind> {
    match surface {
        Surface::Arm => Some(SpecKind::Arm),
        Surface::KeyVault => Some(SpecKind::KeyVault),
        _ => None,
    }
}

impl Inner {
    /// The contract a request is checked against: the Machine Learning tree for
    /// `Microsoft.MachineLearningServices` paths, the main one otherwise.
    fn contract_for(&self, req: &Req) -> Option<&Arc<Contract>> {
        if super::ml::owns(&req.path) {
            self.ml.contract(&self.violations)
        } else {
            self.contract.as_ref()
        }
    }

    /// Validates the request body against the spec; Some(400) when it does not validate.
    pub(crate) fn check_request(&self, surface: Surface, req: &Req) -> Option<Resp> {
        let contract = self.contract_for(req)?;
        let kind = spec_kind(surface)?;
        let at = contract.find(kind, &req.query("api-version")?, &req.method, &req.path)?;
        let body = req.json().ok()?;
        match contract.validate_request(at, &body) {
            Ok(()) => None,
            Err(errs) => {
                let message = format!(
                    "The request content was invalid and could not be deserialized: {}",
                    errs.join("; ")
                );
                let (code, status) = match kind {
                    SpecKind::Arm => ("InvalidRequestContent", 400),
                    SpecKind::KeyVault => ("BadParameter", 400),
                };
                Some(json_response(
                    status,
                    json!({"error": {"code": code, "message": message}}),
                ))
            }
        }
    }

    /// Validates a produced response; violations are recorded, never hidden.
    pub(crate) fn check_response(&self, surface: Surface, req: &Req, resp: &Resp) {
        let Some(contract) = self.contract_for(req) else {
            return;
        };
        let Some(kind) = spec_kind(surface) else {
            return;
        };
        let Some(version) = req.query("api-version") else {
            return;
        };
        let Some(at) = contract.find(kind, &version, &req.method, &req.path) else {
            return;
        };
        let body = resp.extensions().get::<ResponseJson>().map(|b| &b.0);
        if let Err(errs) = contract.validate_response(at, resp.status().as_u16(), body) {
            let msg = format!(
                "{} {} -> {}: {}",
                req.method,
                req.path,
                resp.status().as_u16(),
                errs.join("; ")
            );
            tracing::warn!("contract violation: {msg}");
            self.violations.lock().push(msg);
        }
    }
}

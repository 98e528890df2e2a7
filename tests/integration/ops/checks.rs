//! Checkers for what operators' tools consume: a JSON Schema subset (the one
//! `docs/status.schema.json` uses) and the Prometheus text exposition format (what promtool
//! checks for a node_exporter textfile).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Validates `doc` against `schema`; returns every violation as `path: reason`. Supports `type`
/// (one or a list), `enum`, `minimum`, `required`, `properties`, `additionalProperties: false`,
/// `items`, and the custom `format: tunasync-time` (`""` or `YYYY-MM-DD HH:MM:SS +0000`).
pub fn validate(schema: &Value, doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, doc, "$", &mut errors);
    errors
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(schema: &Value, doc: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => panic!("schema: bad type {other}"),
        };
        if !allowed.contains(&type_name(doc)) {
            errors.push(format!("{path}: {} is not of type {allowed:?}", type_name(doc)));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(doc) {
            errors.push(format!("{path}: {doc} not in {values:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), doc.as_f64()) {
        if n < min {
            errors.push(format!("{path}: {n} < minimum {min}"));
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("tunasync-time") {
        let text = doc.as_str().unwrap_or_default();
        if !text.is_empty() && parse_tunasync_time(text).is_none() {
            errors.push(format!("{path}: {text:?} is not tunasync's time format"));
        }
    }
    if let Some(items) = schema.get("items") {
        for (i, item) in doc.as_array().into_iter().flatten().enumerate() {
            check(items, item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(obj) = doc.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for key in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(key) {
                errors.push(format!("{path}: missing required {key:?}"));
            }
        }
        for (key, value) in obj {
            match props.and_then(|p| p.get(key)) {
                Some(sub) => check(sub, value, &format!("{path}.{key}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: unexpected property {key:?}"))
                }
                None => {}
            }
        }
    }
}

/// `2024-01-02 03:04:05 +0000` → Unix seconds (UTC only: that is what pmirror-fs writes).
pub fn parse_tunasync_time(text: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    time::OffsetDateTime::parse(text, format).ok().map(|t| t.unix_timestamp())
}

/// One sample: metric name and sorted labels.
pub type Series = (String, BTreeMap<String, String>);

/// Parses a Prometheus text exposition file strictly (promtool's rules that matter for a
/// textfile): valid names and label syntax, numeric values, `# TYPE` at most once per family
/// and before its samples, each family's samples contiguous, no duplicate series.
pub fn parse_prometheus(text: &str) -> Result<BTreeMap<Series, f64>, String> {
    let mut samples = BTreeMap::new();
    let mut typed = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if kind == "TYPE" {
                let t = words.next().unwrap_or("");
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                    return Err(at(format!("unknown type {t:?}")));
                }
                if !typed.insert(name.to_owned()) || samples.keys().any(|(m, _): &Series| m == name) {
                    return Err(at("TYPE repeated or after samples".into()));
                }
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (series, value) = sample(line).map_err(at)?;
        if current.as_deref() != Some(series.0.as_str()) {
            if finished.contains(&series.0) {
                return Err(at("samples of a family are not contiguous".into()));
            }
            if let Some(prev) = current.replace(series.0.clone()) {
                finished.insert(prev);
            }
        }
        if samples.insert(series, value).is_some() {
            return Err(at("duplicate series".into()));
        }
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample(line: &str) -> Result<(Series, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(body)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(((name.to_owned(), labels), value))
}

/// `k="v",k2="v2"}` → labels and the text after `}`.
fn label_set(mut body: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = body.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = body.find('=').ok_or("label without '='")?;
        let key = &body[..eq];
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = body[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key:?} repeated"));
        }
        body = &body[eq + 1..][end + 2..];
        body = body.strip_prefix(',').unwrap_or(body);
    }
}

#[test]
fn checkers_reject_what_they_should() {
    let bad_prom = [
        "x 1\nx 2\n",
        "# TYPE x gauge\n# TYPE x gauge\nx 1\n",
        "x 1\ny 1\nx{a=\"b\"} 1\n",
        "1x 1\n",
        "x{a=b} 1\n",
        "x{a=\"b} 1\n",
        "x one\n",
        "x 1\n# TYPE x gauge\n",
    ];
    for text in bad_prom {
        assert!(parse_prometheus(text).is_err(), "accepted {text:?}");
    }
    let good = parse_prometheus("# HELP x h\n# TYPE x gauge\nx{a=\"q\\\"\\\\\\n\",b=\"\"} 1.5\ny +Inf 1700000000\n")
        .expect("valid");
    assert_eq!(good.len(), 2);
    let schema: Value = serde_json::json!({"type": "array", "items": {"type": "object", "additionalProperties": false,
        "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 0}, "t": {"type": "string", "format": "tunasync-time"},
        "e": {"enum": ["x"]}}}});
    let cases = [
        (serde_json::json!([{"a": 1, "t": "2024-01-02 03:04:05 +0000", "e": "x"}]), 0),
        (serde_json::json!([{"a": -1}]), 1),
        (serde_json::json!([{"t": "2024-01-02T03:04:05Z", "z": 1, "e": "y"}]), 4),
        (serde_json::json!({"a": 1}), 1),
    ];
    for (doc, want) in cases {
        assert_eq!(validate(&schema, &doc).len(), want, "{doc}: {:?}", validate(&schema, &doc));
    }
}

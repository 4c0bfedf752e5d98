//! Peeling transport encodings off policy text: percent-encoding (IAM), backslash escaping
//! (API Gateway), JSON string literals, nested up to a few layers.

use serde_json::Value;
use std::fmt::Write as _;

use super::*;

/// Decodes policy text as returned by AWS APIs or written by hand into the
/// JSON document object.
///
/// Accepted forms, possibly nested inside one another:
/// - plain JSON (KMS `GetKeyPolicy`, files on disk);
/// - percent-encoded JSON (IAM; `%20` is a space, `+` stays a plus sign);
/// - backslash-escaped JSON such as `{\"Version\":...}` (API Gateway), with or
///   without surrounding quotes;
/// - a JSON string literal whose content is a policy document.
///
/// # Errors
/// [`PolicyError::InvalidJson`] with the line and column when the (decoded)
/// text is not JSON, [`PolicyError::NotAnObject`] when it is JSON but not an
/// object, and [`PolicyError::Undecodable`] for a broken transport encoding.
pub fn decode_policy_text(text: &str) -> Result<Value, PolicyError> {
    decode_layer(text, Layer::Plain, 0)
}

/// The decoding step that produced the text being parsed, for error messages.
#[derive(Debug, Clone, Copy)]
pub(super) enum Layer {
    Plain,
    PercentDecoded,
    Unescaped,
    StringLiteral,
}

impl Layer {
    fn context(self) -> &'static str {
        match self {
            Layer::Plain => "",
            Layer::PercentDecoded => " (after percent-decoding)",
            Layer::Unescaped => " (after removing backslash escapes)",
            Layer::StringLiteral => " (inside a JSON string)",
        }
    }
}

pub(super) fn decode_layer(text: &str, layer: Layer, depth: usize) -> Result<Value, PolicyError> {
    if depth > MAX_ENCODING_LAYERS {
        return Err(PolicyError::TooManyEncodingLayers { limit: MAX_ENCODING_LAYERS });
    }
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(PolicyError::Empty);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::String(inner)) => decode_layer(&inner, Layer::StringLiteral, depth + 1),
        Ok(Value::Object(object)) => Ok(Value::Object(object)),
        Ok(other) => Err(PolicyError::NotAnObject { found: json_type(&other) }),
        Err(error) if looks_percent_encoded(trimmed) => {
            let decoded = percent_decode(trimmed)?;
            decode_layer(&decoded, Layer::PercentDecoded, depth + 1)
                .map_err(|inner| prefer_outer_error(inner, &error, layer))
        }
        Err(error) if looks_backslash_escaped(trimmed) => {
            let unescaped = unescape_backslashes(trimmed)?;
            decode_layer(&unescaped, Layer::Unescaped, depth + 1)
                .map_err(|inner| prefer_outer_error(inner, &error, layer))
        }
        Err(error) => Err(invalid_json(&error, layer)),
    }
}

/// When a decoding guess fails with "empty", the original JSON error explains
/// the problem better.
pub(super) fn prefer_outer_error(inner: PolicyError, outer: &serde_json::Error, layer: Layer) -> PolicyError {
    match inner {
        PolicyError::Empty => invalid_json(outer, layer),
        other => other,
    }
}

pub(super) fn invalid_json(error: &serde_json::Error, layer: Layer) -> PolicyError {
    let full = error.to_string();
    let location = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&location).unwrap_or(&full).to_string();
    PolicyError::InvalidJson {
        context: layer.context().to_string(),
        message,
        line: error.line(),
        column: error.column(),
    }
}

/// Percent-encoded text has `%XX` escapes and either does not start like JSON
/// or has no literal quote (every real document has quoted keys).
pub(super) fn looks_percent_encoded(text: &str) -> bool {
    let has_escape =
        text.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    let starts_like_json = text.starts_with(['{', '[', '"']);
    has_escape && (!starts_like_json || !text.contains('"'))
}

/// Backslash-escaped text starts with an escaped quote, either at once or
/// right after the opening brace (`{\"Version\":...}`). A plain document that
/// merely contains `\"` inside a string value does not qualify.
pub(super) fn looks_backslash_escaped(text: &str) -> bool {
    let after_brace = text.strip_prefix('{').map_or(text, str::trim_start);
    after_brace.starts_with("\\\"")
}

pub(super) fn percent_decode(text: &str) -> Result<String, PolicyError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|error| PolicyError::Undecodable(format!("percent-decoded policy is not valid UTF-8: {error}")))
}

/// Removes one level of JSON-style backslash escaping by turning the text into
/// a JSON string literal and letting the JSON parser interpret the escapes.
/// Stray quotes and raw control characters (pretty-printed documents) are
/// tolerated.
pub(super) fn unescape_backslashes(text: &str) -> Result<String, PolicyError> {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars
                    .next()
                    .ok_or_else(|| PolicyError::Undecodable("escaped policy ends with a lone backslash".into()))?;
                literal.push('\\');
                push_literal_char(&mut literal, escaped);
            }
            '"' => literal.push_str("\\\""),
            other => push_literal_char(&mut literal, other),
        }
    }
    literal.push('"');
    serde_json::from_str::<String>(&literal)
        .map_err(|error| PolicyError::Undecodable(format!("invalid backslash escape in policy: {error}")))
}

pub(super) fn push_literal_char(literal: &mut String, c: char) {
    if c.is_control() {
        // Writing to a String cannot fail.
        let _ = write!(literal, "\\u{:04x}", u32::from(c));
    } else {
        literal.push(c);
    }
}

pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

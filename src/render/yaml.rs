//! YAML for manifests keyrite writes (`keyrite discover`): block style, every string
//! double-quoted (a JSON string is a valid YAML double-quoted scalar), keys bare when they
//! are plain words. Round trips through [`crate::manifest`]'s parser to the same JSON.

use std::fmt::Write;

use serde_json::Value as Json;

/// `value` as the body of `key:` at `indent` spaces: appended to `out`.
pub fn field(out: &mut String, indent: usize, key: &str, value: &Json) {
    let pad = " ".repeat(indent);
    match value {
        Json::Object(m) if !m.is_empty() => {
            let _ = writeln!(out, "{pad}{}:", self::key(key));
            for (k, v) in m {
                field(out, indent + 2, k, v);
            }
        }
        Json::Array(items) if !items.is_empty() => {
            let _ = writeln!(out, "{pad}{}:", self::key(key));
            for item in items {
                list_item(out, indent + 2, item);
            }
        }
        _ => {
            let _ = writeln!(out, "{pad}{}: {}", self::key(key), scalar(value));
        }
    }
}

fn list_item(out: &mut String, indent: usize, value: &Json) {
    let pad = " ".repeat(indent);
    match value {
        Json::Object(m) if !m.is_empty() => {
            // `- first: …` then the other keys aligned under it.
            let mut first = true;
            for (k, v) in m {
                let mut body = String::new();
                field(&mut body, indent + 2, k, v);
                if first {
                    let _ = write!(out, "{pad}- {}", body.trim_start());
                    first = false;
                } else {
                    out.push_str(&body);
                }
            }
        }
        Json::Array(items) if !items.is_empty() => {
            let _ = writeln!(out, "{pad}-");
            for item in items {
                list_item(out, indent + 2, item);
            }
        }
        _ => {
            let _ = writeln!(out, "{pad}- {}", scalar(value));
        }
    }
}

fn scalar(value: &Json) -> String {
    match value {
        Json::Object(_) => "{}".into(),
        Json::Array(_) => "[]".into(),
        Json::String(s) => Json::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { k.to_owned() } else { Json::String(k.to_owned()).to_string() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn round_trips_through_the_manifest_parser() {
        let value = json!({
            "policy": {"Version": "2012-10-17", "Statement": [
                {"Sid": "A b", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:root"]}, "Action": "kms:*",
                 "Resource": "*", "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}},
                {"Effect": "Deny", "Action": [], "Resource": {}}
            ]},
            "n": 5, "f": 2.5, "t": true, "z": null, "quote\"d": "line\nbreak: ${x.y} # not a comment"
        });
        let mut out = String::new();
        for (k, v) in value.as_object().unwrap() {
            super::field(&mut out, 0, k, v);
        }
        let parsed = crate::manifest::yaml::parse(&out).unwrap().to_json();
        assert_eq!(parsed, value, "{out}");
    }
}

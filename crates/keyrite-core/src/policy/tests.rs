use super::*;
use serde_json::{Value, json};

const KEY_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Id": "keyrite-signer",
  "Statement": [
    {
      "Sid": "Admin",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "AllowSign",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
      "Action": ["kms:Sign", "kms:GetPublicKey"],
      "Resource": "*",
      "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}
    }
  ]
}"#;

/// The IAM trust policy `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
/// "Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
/// as IAM GetRole returns it.
const IAM_ENCODED_TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22lambda.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";

fn policy(doc: Value) -> Policy {
    Policy::parse(&doc).expect("test policy parses")
}

fn text(source: &str) -> Policy {
    Policy::from_text(source).expect("test policy text parses")
}

fn statement(body: Value) -> Policy {
    policy(json!({"Version": "2012-10-17", "Statement": [body]}))
}

fn parse_error(doc: Value) -> PolicyError {
    Policy::parse(&doc).expect_err("test policy must be rejected")
}

fn assert_equivalent(a: &Policy, b: &Policy) {
    assert!(a.equivalent(b), "expected equivalent:\n{a:#?}\n{b:#?}");
    assert!(b.equivalent(a), "equivalence must be symmetric");
    let d = diff(a, b);
    assert!(d.is_empty(), "diff of equivalent policies must be empty: {d}");
}

fn sign_statement() -> Value {
    json!({
        "Sid": "AllowSign",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
        "Action": ["kms:Sign", "kms:GetPublicKey"],
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}
    })
}

fn single_change(d: &PolicyDiff) -> &StatementChange {
    assert!(d.added.is_empty() && d.removed.is_empty(), "unexpected add/remove: {d}");
    assert_eq!(d.changed.len(), 1, "expected exactly one changed statement: {d}");
    &d.changed[0]
}

fn field<'a>(change: &'a StatementChange, name: &str) -> &'a FieldChange {
    change.fields.iter().find(|f| f.field == name).unwrap_or_else(|| panic!("no field {name} in {:?}", change.fields))
}

// --- decoding --------------------------------------------------------

#[test]
fn decodes_plain_json_object() {
    let doc = decode_policy_text(KEY_POLICY).unwrap();
    assert_eq!(doc["Id"], json!("keyrite-signer"));
    assert_eq!(text(KEY_POLICY).statements().len(), 2);
}

#[test]
fn decodes_iam_percent_encoded_document() {
    let doc = decode_policy_text(IAM_ENCODED_TRUST).unwrap();
    assert_eq!(doc["Statement"][0]["Principal"]["Service"], json!("lambda.amazonaws.com"));
    let plain = policy(json!({
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    }));
    assert_equivalent(&text(IAM_ENCODED_TRUST), &plain);
}

#[test]
fn percent_decoding_keeps_plus_and_decodes_space() {
    let encoded = "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Aa+b%2Fmy%20file%22%7D%7D";
    let parsed = text(encoded);
    let resources = parsed.statements()[0].resources().unwrap();
    assert_eq!(resources.values.iter().collect::<Vec<_>>(), ["arn:aws:s3:::a+b/my file"]);
}

#[test]
fn decodes_api_gateway_backslash_escaped_document() {
    let escaped = r#"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"execute-api:Invoke\",\"Resource\":\"arn:aws:execute-api:us-east-1:111122223333:abc123/*\",\"Condition\":{\"IpAddress\":{\"aws:SourceIp\":\"10.0.0.0/8\"}}}]}"#;
    let plain = policy(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["execute-api:Invoke"],
            "Resource": "arn:aws:execute-api:us-east-1:111122223333:abc123/*",
            "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}
        }]
    }));
    assert_equivalent(&text(escaped), &plain);
}

#[test]
fn decodes_escaped_document_with_raw_newlines_and_escaped_slashes() {
    let escaped = "{\n  \\\"Statement\\\": {\\\"Effect\\\": \\\"Deny\\\",\n  \\\"Action\\\": \\\"kms:Decrypt\\\", \\\"Resource\\\": \\\"arn:aws:kms:eu-west-1:111122223333:key\\/abc\\\"}\n}";
    let parsed = text(escaped);
    let resources = parsed.statements()[0].resources().unwrap();
    assert!(resources.values.contains("arn:aws:kms:eu-west-1:111122223333:key/abc"));
    assert_eq!(parsed.statements()[0].effect(), Effect::Deny);
}

#[test]
fn decodes_json_string_literal_and_double_escaping() {
    let inner = r#"{"Statement":{"Effect":"Allow","Action":"kms:Sign","Resource":"*"}}"#;
    let literal = serde_json::to_string(inner).unwrap();
    assert!(literal.starts_with("\"{\\\""));
    let double = serde_json::to_string(&literal).unwrap();
    let unquoted_double = double.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap();
    let expected = text(inner);
    assert_equivalent(&text(&literal), &expected);
    assert_equivalent(&text(&double), &expected);
    assert_equivalent(&text(unquoted_double), &expected);
}

#[test]
fn decodes_string_literal_holding_percent_encoded_document() {
    let literal = serde_json::to_string(IAM_ENCODED_TRUST).unwrap();
    assert_equivalent(&text(&literal), &text(IAM_ENCODED_TRUST));
}

#[test]
fn byte_order_mark_and_surrounding_whitespace_are_ignored() {
    let with_bom = format!("\u{feff}\n\t {KEY_POLICY}  \n");
    assert_equivalent(&text(&with_bom), &text(KEY_POLICY));
}

#[test]
fn invalid_json_reports_line_and_column() {
    let broken = "{\n  \"Version\": \"2012-10-17\",\n    \"Statement\": [,]\n}";
    let error = decode_policy_text(broken).unwrap_err();
    let PolicyError::InvalidJson { line, column, .. } = &error else {
        panic!("expected InvalidJson, got {error:?}");
    };
    assert_eq!((*line, *column), (3, 19));
    let message = error.to_string();
    assert!(message.starts_with("policy is not valid JSON: "), "{message}");
    assert!(message.ends_with("at line 3 column 19"), "{message}");
    assert_eq!(message.matches("at line").count(), 1, "{message}");
}

#[test]
fn invalid_plain_json_with_escaped_quote_in_a_value_reports_plain_error() {
    let broken = r#"{"Statement": {"Effect": "Allow", "Action": "s3:Get\"Object",}}"#;
    let error = decode_policy_text(broken).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("policy is not valid JSON: "), "{message}");
    assert_eq!(message, "policy is not valid JSON: trailing comma at line 1 column 62");
}

#[test]
fn invalid_json_after_percent_decoding_says_so() {
    let error = decode_policy_text("%7B%22Version%22%3A%7D").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("(after percent-decoding)"), "{message}");
    assert!(message.contains("line 1 column"), "{message}");
}

#[test]
fn rejects_empty_non_object_and_undecodable_text() {
    assert_eq!(decode_policy_text("  \n "), Err(PolicyError::Empty));
    assert_eq!(decode_policy_text("[1, 2]"), Err(PolicyError::NotAnObject { found: "an array" }));
    assert_eq!(decode_policy_text("\"42\""), Err(PolicyError::NotAnObject { found: "a number" }));
    let error = decode_policy_text("%FF%FE%7B").unwrap_err();
    assert!(matches!(error, PolicyError::Undecodable(_)), "{error:?}");
    assert!(error.to_string().contains("UTF-8"));
}

#[test]
fn deeply_nested_string_literals_are_rejected() {
    let mut wrapped = KEY_POLICY.to_string();
    for _ in 0..6 {
        wrapped = serde_json::to_string(&wrapped).unwrap();
    }
    assert_eq!(decode_policy_text(&wrapped), Err(PolicyError::TooManyEncodingLayers { limit: MAX_ENCODING_LAYERS }));
}

#[test]
fn never_panics_on_truncated_or_mangled_input() {
    let encoded: String =
        percent_encoding::utf8_percent_encode(KEY_POLICY, percent_encoding::NON_ALPHANUMERIC).to_string();
    let escaped = serde_json::to_string(KEY_POLICY).unwrap();
    for source in [KEY_POLICY, encoded.as_str(), escaped.as_str()] {
        for (cut, _) in source.char_indices() {
            let _ = Policy::from_text(&source[..cut]);
            let _ = Policy::from_text(&source[cut..]);
        }
    }
    for weird in ["\\", "\"\\", "%", "%%%", "{\\\"", "\"\"", "null", "{}", "\u{0}", "{\\u0000\\\"}"] {
        let _ = Policy::from_text(weird);
    }
    assert!(Policy::from_text(&encoded).is_ok());
}

// --- parse errors ----------------------------------------------------

#[test]
fn bad_effect_names_statement_position() {
    let error = parse_error(json!({
        "Version": "2012-10-17",
        "Statement": [sign_statement(), {"Effect": "allow", "Action": "kms:Sign", "Resource": "*"}]
    }));
    assert_eq!(error.to_string(), "Statement 2: Effect must be Allow or Deny, found \"allow\"");
    let missing = parse_error(json!({"Statement": {"Action": "kms:Sign"}}));
    assert_eq!(missing.to_string(), "Statement 1: Effect is missing (must be Allow or Deny)");
}

#[test]
fn missing_or_doubled_action_is_rejected() {
    let missing = parse_error(json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}));
    assert_eq!(missing.to_string(), "Statement 1: must have exactly one of Action or NotAction");
    let both = parse_error(json!({"Statement": [
        {"Effect": "Allow", "Action": "kms:Sign", "NotAction": "kms:Decrypt", "Resource": "*"}
    ]}));
    assert_eq!(both.to_string(), "Statement 1: must not have both Action and NotAction");
}

#[test]
fn resource_and_not_resource_together_are_rejected() {
    let error = parse_error(json!({"Statement": [
        {"Effect": "Allow", "Action": "kms:Sign", "Resource": "*", "NotResource": "arn:x"}
    ]}));
    assert_eq!(
        error,
        PolicyError::InvalidStatement { position: 1, reason: "must not have both Resource and NotResource".into() }
    );
}

#[test]
fn unknown_statement_and_document_keys_are_named() {
    let error = parse_error(json!({"Statement": [
        sign_statement(),
        {"Effect": "Allow", "Actions": "kms:Sign", "Resource": "*"}
    ]}));
    assert_eq!(error, PolicyError::UnknownStatementKey { position: 2, key: "Actions".into() });
    assert!(error.to_string().starts_with("Statement 2: unknown key \"Actions\""));
    let document = parse_error(json!({"Statement": [], "Statements": []}));
    assert_eq!(document, PolicyError::UnknownDocumentKey { key: "Statements".into() });
}

#[test]
fn non_object_statements_and_statement_lists_are_rejected() {
    let error = parse_error(json!({"Statement": [sign_statement(), "Allow everything"]}));
    assert_eq!(error.to_string(), "Statement 2: must be a JSON object, found a string");
    let list = parse_error(json!({"Statement": "nope"}));
    assert!(matches!(list, PolicyError::InvalidDocumentField { field: "Statement", .. }));
    assert_eq!(parse_error(json!({"Version": "2012-10-17"})), PolicyError::MissingStatement);
}

#[test]
fn bad_values_are_rejected_with_field_names() {
    let cases = [
        (json!({"Effect": "Allow", "Action": [], "Resource": "*"}), "Action must not be empty"),
        (json!({"Effect": "Allow", "Action": [1], "Resource": "*"}), "Action values must be strings, found a number"),
        (json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": ""}), "Resource values must not be empty strings"),
        (json!({"Effect": "Allow", "Action": "kms:Sign", "Principal": {"aws": "*"}}), "unknown principal type \"aws\""),
        (
            json!({"Effect": "Allow", "Action": "kms:Sign", "Principal": "arn:aws:iam::111122223333:root"}),
            "Principal must be \"*\" or an object",
        ),
        (
            json!({"Effect": "Allow", "Action": "kms:Sign", "Condition": {"Bool": {"aws:SecureTransport": null}}}),
            "Condition.Bool.aws:SecureTransport values must be strings, booleans or numbers, found null",
        ),
        (
            json!({"Effect": "Allow", "Action": "kms:Sign", "Condition": {"StringEquals": "x"}}),
            "Condition.StringEquals must be an object",
        ),
        (
            json!({"Effect": "Allow", "Action": "kms:Sign", "Condition": {"StringEquals": {"kms:ViaService": "a", "KMS:viaservice": "b"}}}),
            "more than once",
        ),
        (json!({"Sid": 7, "Effect": "Allow", "Action": "kms:Sign"}), "Sid must be a string"),
    ];
    for (body, expected) in cases {
        let message = parse_error(json!({"Statement": [body]})).to_string();
        assert!(message.starts_with("Statement 1: "), "{message}");
        assert!(message.contains(expected), "{message:?} should contain {expected:?}");
    }
}

#[test]
fn unknown_version_is_rejected() {
    let error = parse_error(json!({"Version": "2012-10-18", "Statement": []}));
    assert_eq!(
        error.to_string(),
        "policy document: Version must be \"2012-10-17\" or \"2008-10-17\", found \"2012-10-18\""
    );
}

#[test]
fn trust_policy_without_resource_parses() {
    let trust = text(IAM_ENCODED_TRUST);
    let only = &trust.statements()[0];
    assert!(only.resources().is_none());
    assert_eq!(only.principals().unwrap().principals["Service"].len(), 1);
    assert_eq!(only.position(), 1);
    assert_eq!(only.sid(), None);
}

// --- equivalence -----------------------------------------------------

#[test]
fn statement_order_does_not_matter() {
    let doc: Value = serde_json::from_str(KEY_POLICY).unwrap();
    let mut reversed = doc.clone();
    reversed["Statement"].as_array_mut().unwrap().reverse();
    assert_equivalent(&policy(doc), &policy(reversed));
}

#[test]
fn reformatted_json_is_equivalent() {
    let compact = serde_json::to_string(&serde_json::from_str::<Value>(KEY_POLICY).unwrap()).unwrap();
    assert!(!compact.contains('\n'));
    assert_equivalent(&text(&compact), &text(KEY_POLICY));
}

#[test]
fn single_statement_object_equals_one_element_array() {
    let object = policy(json!({"Version": "2012-10-17", "Statement": sign_statement()}));
    let array = policy(json!({"Version": "2012-10-17", "Statement": [sign_statement()]}));
    assert_equivalent(&object, &array);
}

#[test]
fn strings_equal_one_element_lists_everywhere() {
    let strings = statement(json!({
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
        "Action": "kms:Sign",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}
    }));
    let lists = statement(json!({
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::111122223333:role/signer"]},
        "Action": ["kms:Sign"],
        "Resource": ["*"],
        "Condition": {"StringEquals": {"kms:SigningAlgorithm": ["ECDSA_SHA_256"]}}
    }));
    assert_equivalent(&strings, &lists);
}

#[test]
fn lists_are_sets() {
    let a = statement(json!({"Effect": "Allow", "Action": ["kms:Sign", "kms:Verify"], "Resource": ["arn:b", "arn:a"]}));
    let b = statement(
        json!({"Effect": "Allow", "Action": ["kms:Verify", "kms:Sign", "kms:Sign"], "Resource": ["arn:a", "arn:b", "arn:a"]}),
    );
    assert_equivalent(&a, &b);
}

#[test]
fn actions_compare_case_insensitively_but_keep_spelling() {
    let a = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
    let b = statement(json!({"Effect": "Allow", "Action": "KMS:sign", "Resource": "*"}));
    assert_equivalent(&a, &b);
    let first = a.statements()[0].actions().values.iter().next().unwrap();
    assert_eq!(first.as_str(), "kms:Sign");
}

#[test]
fn resources_compare_case_sensitively() {
    let a = statement(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::Bucket/*"}));
    let b = statement(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}));
    assert!(!a.equivalent(&b));
}

#[test]
fn account_id_equals_root_arn() {
    let id =
        statement(json!({"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}));
    let arn = statement(
        json!({"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]}, "Action": "kms:*", "Resource": "*"}),
    );
    assert_equivalent(&id, &arn);
    let not_an_id =
        statement(json!({"Effect": "Allow", "Principal": {"AWS": "11112222333"}, "Action": "kms:*", "Resource": "*"}));
    assert!(!not_an_id.equivalent(&arn));
}

#[test]
fn star_principal_equals_aws_star() {
    let star = statement(json!({"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"}));
    let aws_star = statement(
        json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "execute-api:Invoke", "Resource": "*"}),
    );
    assert_equivalent(&star, &aws_star);
    let not_principal = statement(
        json!({"Effect": "Allow", "NotPrincipal": {"AWS": "*"}, "Action": "execute-api:Invoke", "Resource": "*"}),
    );
    assert!(!not_principal.equivalent(&star));
}

#[test]
fn condition_keys_are_case_insensitive_operators_are_not() {
    let base = |operator: &str, key: &str| {
        statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*",
            "Condition": {operator: {key: "ECDSA_SHA_256"}}}))
    };
    let original = base("StringEquals", "kms:SigningAlgorithm");
    assert_equivalent(&original, &base("StringEquals", "KMS:signingalgorithm"));
    assert!(!original.equivalent(&base("stringequals", "kms:SigningAlgorithm")));
}

#[test]
fn boolean_and_number_condition_values_equal_their_strings() {
    let typed = statement(json!({"Effect": "Deny", "Action": "s3:*", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": false}, "NumericLessThan": {"s3:TlsVersion": 1.2}}}));
    let strings = statement(json!({"Effect": "Deny", "Action": "s3:*", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}, "NumericLessThan": {"s3:TlsVersion": ["1.2"]}}}));
    assert_equivalent(&typed, &strings);
}

#[test]
fn empty_condition_blocks_mean_no_condition() {
    let none = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
    let empty =
        statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*", "Condition": {"StringEquals": {}}}));
    assert_equivalent(&none, &empty);
}

#[test]
fn exact_duplicate_statements_collapse() {
    let doubled = policy(json!({"Version": "2012-10-17", "Statement": [
        sign_statement(),
        {"Sid": "Copy", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:role/signer"]},
         "Action": ["KMS:GetPublicKey", "kms:Sign"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:signingalgorithm": "ECDSA_SHA_256"}}}
    ]}));
    assert_eq!(doubled.statements().len(), 1);
    assert_eq!(doubled.statements()[0].sid(), Some("AllowSign"));
    assert_equivalent(&doubled, &statement(sign_statement()));
}

#[test]
fn sid_and_id_changes_are_equivalent() {
    let original = text(KEY_POLICY);
    let renamed = text(&KEY_POLICY.replace("AllowSign", "SignerAccess").replace("keyrite-signer", "other-id"));
    assert_ne!(original, renamed);
    assert_equivalent(&original, &renamed);
    let no_sids = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
    let with_sid = statement(json!({"Sid": "X", "Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
    assert_equivalent(&no_sids, &with_sid);
}

#[test]
fn missing_version_is_2008_and_differs_from_2012() {
    let body = json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"});
    let missing = policy(json!({"Statement": body.clone()}));
    let old = policy(json!({"Version": "2008-10-17", "Statement": body.clone()}));
    let current = policy(json!({"Version": "2012-10-17", "Statement": body}));
    assert_eq!(missing.version(), DEFAULT_VERSION);
    assert_equivalent(&missing, &old);
    assert!(!missing.equivalent(&current));
    let d = diff(&current, &missing);
    assert_eq!(d.version, Some(VersionChange { expected: "2012-10-17".into(), live: "2008-10-17".into() }));
    assert!(d.changed.is_empty() && d.added.is_empty() && d.removed.is_empty());
    assert!(!d.is_empty());
    assert_eq!(d.to_string(), "~ Version: \"2012-10-17\" (expected) -> \"2008-10-17\" (live)\n");
}

#[test]
fn canonical_json_round_trips() {
    let original = text(KEY_POLICY);
    let canonical = original.to_json();
    assert_eq!(canonical["Statement"][1]["Action"], json!(["kms:GetPublicKey", "kms:Sign"]));
    assert_eq!(canonical["Statement"][0]["Action"], json!("kms:*"));
    let reparsed = policy(canonical);
    assert_equivalent(&original, &reparsed);
    assert_eq!(reparsed.id(), Some("keyrite-signer"));
}

// --- diff ------------------------------------------------------------

#[test]
fn replacing_a_wildcard_with_a_specific_action_narrows() {
    let wide = Policy::from_text(r#"{"Version":"2012-10-17","Statement":[{"Sid":"S","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/a"},"Action":"kms:*","Resource":"*"}]}"#).unwrap();
    let narrow = Policy::from_text(r#"{"Version":"2012-10-17","Statement":[{"Sid":"S","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/a"},"Action":"kms:Sign","Resource":"*"}]}"#).unwrap();
    assert!(!diff(&wide, &narrow).broadens(), "kms:* → kms:Sign narrows");
    assert!(diff(&narrow, &wide).broadens(), "kms:Sign → kms:* broadens");
    assert!(wildcard_match("kms:Get*", "KMS:GetPublicKey"));
    assert!(wildcard_match("arn:aws:kms:*:111122223333:key/?bc", "arn:aws:kms:us-east-1:111122223333:key/abc"));
    assert!(!wildcard_match("kms:Get*", "kms:Sign"));
}

#[test]
fn action_broadened_to_kms_star() {
    let expected = statement(sign_statement());
    let mut live_body = sign_statement();
    live_body["Action"] = json!(["kms:Sign", "kms:GetPublicKey", "kms:*"]);
    let d = diff(&expected, &statement(live_body));
    let change = single_change(&d);
    assert!(change.broadened);
    assert_eq!(change.fields.len(), 1);
    assert_eq!(change.fields[0], FieldChange { field: "Action".into(), removed: vec![], added: vec!["kms:*".into()] });
    assert!(d.broadens());
}

#[test]
fn removed_signing_algorithm_condition_is_broadening() {
    let expected = statement(sign_statement());
    let mut live_body = sign_statement();
    live_body.as_object_mut().unwrap().remove("Condition");
    let d = diff(&expected, &statement(live_body));
    let change = single_change(&d);
    assert!(change.broadened);
    let condition = field(change, "Condition.StringEquals.kms:SigningAlgorithm");
    assert_eq!(condition.removed, ["ECDSA_SHA_256"]);
    assert!(condition.added.is_empty());
}

#[test]
fn added_source_ip_restriction_is_not_broadening() {
    let expected = statement(sign_statement());
    let mut live_body = sign_statement();
    live_body["Condition"]["IpAddress"] = json!({"aws:SourceIp": "203.0.113.0/24"});
    let d = diff(&expected, &statement(live_body));
    let change = single_change(&d);
    assert!(!change.broadened);
    assert_eq!(field(change, "Condition.IpAddress.aws:SourceIp").added, ["203.0.113.0/24"]);
    assert!(!d.broadens());
}

#[test]
fn extra_allowed_condition_value_is_broadening_and_negated_operator_is_reversed() {
    let with = |operator: &str, values: Value| {
        statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*",
            "Condition": {operator: {"kms:SigningAlgorithm": values}}}))
    };
    let d = diff(
        &with("StringEquals", json!("ECDSA_SHA_256")),
        &with("StringEquals", json!(["ECDSA_SHA_256", "RSASSA_PSS_SHA_256"])),
    );
    assert!(single_change(&d).broadened);
    let d = diff(
        &with("StringNotEquals", json!(["RSASSA_PSS_SHA_256", "ECDSA_SHA_384"])),
        &with("StringNotEquals", json!("RSASSA_PSS_SHA_256")),
    );
    assert!(single_change(&d).broadened, "removing an exclusion broadens");
    let d = diff(
        &with("StringNotEquals", json!("RSASSA_PSS_SHA_256")),
        &with("StringNotEquals", json!(["RSASSA_PSS_SHA_256", "ECDSA_SHA_384"])),
    );
    assert!(!single_change(&d).broadened, "adding an exclusion narrows");
}

#[test]
fn added_and_removed_statements() {
    let expected = text(KEY_POLICY);
    let mut doc: Value = serde_json::from_str(KEY_POLICY).unwrap();
    let statements = doc["Statement"].as_array_mut().unwrap();
    statements.remove(0);
    statements.push(
        json!({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "iam:PassRole", "Resource": "*"}),
    );
    let live = policy(doc);
    let d = diff(&expected, &live);
    assert!(d.changed.is_empty(), "{d}");
    assert_eq!(d.removed.len(), 1);
    assert_eq!(d.removed[0].sid(), Some("Admin"));
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].position(), 2);
    assert!(d.broadens(), "an added Allow broadens");
}

#[test]
fn removed_deny_broadens_and_added_deny_does_not() {
    let allow = json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*"});
    let deny = json!({"Effect": "Deny", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"});
    let with_deny = policy(json!({"Version": "2012-10-17", "Statement": [allow.clone(), deny]}));
    let without = policy(json!({"Version": "2012-10-17", "Statement": [allow]}));
    let removed = diff(&with_deny, &without);
    assert_eq!(removed.removed.len(), 1);
    assert!(removed.broadens());
    let added = diff(&without, &with_deny);
    assert_eq!(added.added.len(), 1);
    assert!(!added.broadens());
}

#[test]
fn changed_resource_is_reported_and_broadening() {
    let expected = statement(
        json!({"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::logs/*"}),
    );
    let live =
        statement(json!({"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"}));
    let d = diff(&expected, &live);
    let change = single_change(&d);
    assert_eq!(
        change.fields,
        [FieldChange {
            field: "Resource".into(),
            removed: vec!["arn:aws:s3:::logs/*".into()],
            added: vec!["arn:aws:s3:::*".into()],
        }]
    );
    assert!(change.broadened);
}

#[test]
fn narrowed_deny_is_broadening_and_widened_deny_is_not() {
    let deny = |actions: Value| {
        statement(json!({"Sid": "NoDelete", "Effect": "Deny", "Principal": "*", "Action": actions, "Resource": "*"}))
    };
    let both = deny(json!(["kms:ScheduleKeyDeletion", "kms:DisableKey"]));
    let one = deny(json!("kms:ScheduleKeyDeletion"));
    let narrowed = diff(&both, &one);
    let change = single_change(&narrowed);
    assert!(change.broadened);
    assert_eq!(field(change, "Action").removed, ["kms:DisableKey"]);
    let widened = diff(&one, &both);
    assert!(!single_change(&widened).broadened);
}

#[test]
fn removed_not_action_exclusion_is_broadening() {
    let not_action = |actions: Value| statement(json!({"Effect": "Allow", "NotAction": actions, "Resource": "*"}));
    let d = diff(&not_action(json!(["iam:*", "kms:ScheduleKeyDeletion"])), &not_action(json!("iam:*")));
    let change = single_change(&d);
    assert!(change.broadened);
    assert_eq!(field(change, "NotAction").removed, ["kms:ScheduleKeyDeletion"]);
}

#[test]
fn action_turned_into_not_action_counts_as_broadening() {
    let expected = statement(json!({"Sid": "S", "Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
    let live = statement(json!({"Sid": "S", "Effect": "Allow", "NotAction": "kms:Decrypt", "Resource": "*"}));
    let d = diff(&expected, &live);
    let change = single_change(&d);
    assert!(change.broadened);
    assert_eq!(field(change, "Action").removed, ["kms:Sign"]);
    assert_eq!(field(change, "NotAction").added, ["kms:Decrypt"]);
}

#[test]
fn added_principal_is_broadening() {
    let expected = statement(sign_statement());
    let mut live_body = sign_statement();
    live_body["Principal"] = json!({
        "AWS": ["arn:aws:iam::111122223333:role/signer", "999988887777"],
        "Service": "lambda.amazonaws.com"
    });
    let d = diff(&expected, &statement(live_body));
    let change = single_change(&d);
    assert!(change.broadened);
    assert_eq!(field(change, "Principal.AWS").added, ["arn:aws:iam::999988887777:root"]);
    assert_eq!(field(change, "Principal.Service").added, ["lambda.amazonaws.com"]);
}

#[test]
fn effect_flip_to_allow_is_broadening() {
    let deny = statement(json!({"Sid": "Guard", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}));
    let allow = statement(json!({"Sid": "Guard", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}));
    let d = diff(&deny, &allow);
    let change = single_change(&d);
    assert!(change.broadened);
    assert_eq!(field(change, "Effect").added, ["Allow"]);
    assert!(!single_change(&diff(&allow, &deny)).broadened);
}

#[test]
fn pairs_by_sid_even_when_content_differs_entirely() {
    let expected = statement(json!({"Sid": "Main", "Effect": "Allow", "Action": "kms:Sign", "Resource": "arn:a"}));
    let live = statement(json!({"Sid": "Main", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:b"}));
    let change = single_change(&diff(&expected, &live)).clone();
    assert_eq!(change.expected.sid(), Some("Main"));
    assert_eq!(field(&change, "Action").added, ["s3:GetObject"]);
    assert_eq!(field(&change, "Resource").removed, ["arn:a"]);
}

#[test]
fn unrelated_statements_without_sids_are_added_and_removed() {
    let expected = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "arn:a"}));
    let live = statement(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:b"}));
    let d = diff(&expected, &live);
    assert!(d.changed.is_empty());
    assert_eq!((d.removed.len(), d.added.len()), (1, 1));
}

#[test]
fn pairs_by_best_match_without_sids() {
    let expected = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/a"}, "Action": "kms:Sign", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/b"}, "Action": "kms:Sign", "Resource": "*"}
    ]}));
    let live = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/b"}, "Action": ["kms:Sign", "kms:Verify"], "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/a"}, "Action": "kms:Sign", "Resource": "*"}
    ]}));
    let d = diff(&expected, &live);
    let change = single_change(&d);
    assert_eq!(change.expected.position(), 2);
    assert_eq!(change.live.position(), 1);
    assert_eq!(change.fields.len(), 1);
    assert_eq!(field(change, "Action").added, ["kms:Verify"]);
}

#[test]
fn display_renders_human_lines() {
    let expected = text(KEY_POLICY);
    let live = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ops"}, "Action": "kms:DescribeKey", "Resource": "*"},
        {"Sid": "AllowSign", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
         "Action": ["kms:Sign", "kms:GetPublicKey", "kms:*"], "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:role/ci"}, "Action": "iam:PassRole", "Resource": "*"}
    ]}));
    let d = diff(&expected, &live);
    let rendered = d.to_string();
    let expected_lines = [
        "~ statement \"AllowSign\" (#2): BROADENED",
        "    Action: + kms:*",
        "    Condition.StringEquals.kms:SigningAlgorithm: - ECDSA_SHA_256",
        "+ statement #3 (added): Allow Action [iam:PassRole] on Resource [*] Principal AWS [arn:aws:iam::444455556666:role/ci]",
        "+ statement \"Other\" (#1) (added): Allow Action [kms:DescribeKey] on Resource [*] Principal AWS [arn:aws:iam::111122223333:role/ops]",
        "- statement \"Admin\" (#1) (removed): Allow Action [kms:*] on Resource [*] Principal AWS [arn:aws:iam::111122223333:root]",
    ];
    for line in expected_lines {
        assert!(rendered.lines().any(|l| l == line), "missing line {line:?} in:\n{rendered}");
    }
    assert!(!rendered.contains("Version"));
    assert_eq!(d.changed.len(), 1);
}

#[test]
fn display_of_unbroadened_change_and_moved_statement() {
    let expected = statement(sign_statement());
    let mut live_body = sign_statement();
    live_body["Action"] = json!("kms:Sign");
    let live = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}, live_body
    ]}));
    let rendered = diff(&expected, &live).to_string();
    assert!(rendered.contains("~ statement \"AllowSign\" (#1) (live #2):\n"), "{rendered}");
    assert!(rendered.contains("    Action: - kms:GetPublicKey\n"), "{rendered}");
    assert!(!rendered.contains("BROADENED"), "{rendered}");
    assert!(rendered.contains("+ statement #1 (added): Deny Action [kms:Decrypt] on Resource [*]"), "{rendered}");
}

#[test]
fn empty_diff_renders_nothing_and_serialises() {
    let d = diff(&text(KEY_POLICY), &text(KEY_POLICY));
    assert!(d.is_empty());
    assert!(!d.broadens());
    assert_eq!(d.to_string(), "");
    assert_eq!(serde_json::to_value(&d).unwrap(), json!({"version": null, "removed": [], "added": [], "changed": []}));
}

#[test]
fn diff_serialises_to_json() {
    let expected = statement(sign_statement());
    let mut live_body = sign_statement();
    live_body["Action"] = json!("KMS:*");
    let value = serde_json::to_value(diff(&expected, &statement(live_body))).unwrap();
    let change = &value["changed"][0];
    assert_eq!(change["broadened"], json!(true));
    assert_eq!(change["expected"]["sid"], json!("AllowSign"));
    assert_eq!(change["live"]["action"]["values"], json!(["KMS:*"]));
    assert_eq!(
        change["fields"][0],
        json!({"field": "Action", "removed": ["kms:GetPublicKey", "kms:Sign"], "added": ["KMS:*"]})
    );
    let error = serde_json::to_value(PolicyError::UnknownStatementKey { position: 3, key: "Foo".into() }).unwrap();
    assert_eq!(error, json!({"UnknownStatementKey": {"position": 3, "key": "Foo"}}));
}

#[test]
fn negated_operator_detection() {
    for operator in ["StringNotEquals", "ForAllValues:StringNotLike", "NotIpAddress", "ArnNotEqualsIfExists"] {
        assert!(is_negated_operator(operator), "{operator}");
    }
    for operator in ["StringEquals", "ForAnyValue:StringLike", "IpAddress", "Null", "BoolIfExists"] {
        assert!(!is_negated_operator(operator), "{operator}");
    }
}

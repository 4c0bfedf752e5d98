//! Invoking a deployed keyrite function as its Function URL would (`lambda:InvokeFunction`
//! with a payload 2.0 POST event), for callers that hold the invoke permission rather than a
//! route to the URL: `keyrite enrol submit` asks the quorum gate this way.

use serde_json::{Value, json};

use super::Aws;

/// POSTs `body` to `function`: the answer's status and JSON body. A failed call, or a
/// function error (a crash, a timeout), is an `Err` saying so.
pub async fn post(aws: &Aws, function: &str, body: &str) -> Result<(u16, Value), String> {
    let event = json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": body, "isBase64Encoded": false});
    let out = aws
        .lambda
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| format!("lambda:InvokeFunction {function}: {}", aws_sdk_lambda::error::DisplayErrorContext(e)))?;
    let payload = out.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default();
    if let Some(error) = out.function_error() {
        return Err(format!("{function} failed ({error}): {}", String::from_utf8_lossy(&payload)));
    }
    let response: Value =
        serde_json::from_slice(&payload).map_err(|e| format!("{function}'s answer is not JSON: {e}"))?;
    let status = response["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0);
    let body = response["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    Ok((status, body))
}

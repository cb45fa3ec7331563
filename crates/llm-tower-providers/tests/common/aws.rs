//! AWS test helpers: the test credentials, a SigV4 check of received requests (recomputed
//! with `aws-sigv4` from the test credentials) and binary event-stream frames.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as EsMessage};
use llm_tower_providers::bedrock::AwsCredentials;
use serde_json::{Value, json};

use super::{Recorded, Reply};

pub const AKID: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE-SESSION-TOKEN";
pub const REGION: &str = "eu-west-3";

/// The test credentials, with the session token.
pub fn creds() -> AwsCredentials {
    AwsCredentials::new(AKID, SECRET).session_token(TOKEN)
}

/// Recomputes the SigV4 signature of a received request from the test credentials and
/// compares it with its `authorization` header.
pub fn verify_signature(rec: &Recorded) -> Result<(), String> {
    let auth = rec
        .header("authorization")
        .ok_or("no authorization header")?;
    let expected_scope = format!("Credential={AKID}/");
    if !auth.starts_with("AWS4-HMAC-SHA256 ") || !auth.contains(&expected_scope) {
        return Err(format!("unexpected authorization {auth}"));
    }
    if !auth.contains(&format!("/{REGION}/bedrock/aws4_request")) {
        return Err(format!("wrong scope in {auth}"));
    }
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .ok_or("no SignedHeaders")?;
    let names: Vec<&str> = signed.split(';').collect();
    for required in ["host", "x-amz-date", "x-amz-security-token"] {
        if !names.contains(&required) {
            return Err(format!("{required} is not signed: {signed}"));
        }
    }
    let date = rec.header("x-amz-date").ok_or("no x-amz-date")?;
    let fmt =
        time::format_description::parse_borrowed::<2>("[year][month][day]T[hour][minute][second]Z")
            .map_err(|e| e.to_string())?;
    let when = time::PrimitiveDateTime::parse(date, &fmt)
        .map_err(|e| e.to_string())?
        .assume_utc();
    let when: SystemTime = when.into();
    let headers: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (*n, rec.header(n).unwrap_or_default()))
        .collect();
    let host = rec.header("host").ok_or("no host")?;
    let uri = format!(
        "http://{host}{}",
        rec.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let identity: Identity =
        Credentials::new(AKID, SECRET, Some(TOKEN.to_owned()), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("bedrock")
        .time(when)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        rec.method.as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(&rec.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let recomputed = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_owned())
        .ok_or("the signer made no authorization")?;
    if recomputed != auth {
        return Err(format!(
            "signature mismatch:\n got      {auth}\n expected {recomputed}"
        ));
    }
    Ok(())
}

pub fn frame(event: &str, payload: Value) -> Vec<u8> {
    let m = EsMessage::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

pub fn exception(kind: &str, message: &str) -> Vec<u8> {
    let m = EsMessage::new(json!({ "message": message }).to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(kind.to_owned().into()),
        ));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

pub fn event_stream(frames: &[Vec<u8>]) -> Reply {
    Reply::bytes(200, "application/vnd.amazon.eventstream", frames.concat())
}

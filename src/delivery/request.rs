//! Building the signed HTTP request of one attempt.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};

use crate::model::HttpMethod;
use crate::signing::{self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SigningSecret};

// The signing headers as ready names (a `&str` name is parsed again on every insert).
const WEBHOOK_ID: HeaderName = HeaderName::from_static(HEADER_ID);
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static(HEADER_TIMESTAMP);
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static(HEADER_SIGNATURE);

/// Why a request could not be built. Retrying does not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The stored URL does not parse.
    #[error("invalid webhook URL: {0}")]
    Url(String),
    /// With GET, the URL carrying the payload would be longer than the limit.
    #[error(
        "the GET URL with the payload would be {len} bytes, over the {max}-byte limit; use POST for this webhook"
    )]
    GetUrlTooLong {
        /// The URL's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message id is not a valid header value.
    #[error("invalid message id")]
    MessageId,
}

/// What one attempt sends.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Destination URL.
    pub url: &'a str,
    /// POST or GET.
    pub method: HttpMethod,
    /// The unsealed custom headers.
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// Secrets to sign with (one signature each).
    pub secrets: &'a [SigningSecret],
    /// `webhook-id`.
    pub message_id: &'a str,
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    /// The exact JSON.
    pub payload: &'a Bytes,
    /// `user-agent`.
    pub user_agent: &'a HeaderValue,
    /// Longest GET URL allowed.
    pub max_get_url: usize,
}

/// Builds the request, with its headers in this order: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature` (one entry per secret; empty with no secret), `content-length` (POST
/// only, also when the payload is empty), `host` (the URL's host, and its port unless it is
/// the scheme's default), `content-type: application/json`, `user-agent`, then the custom
/// headers (a custom `user-agent` replaces the default in its place; the other names set
/// here are reserved, see [`RESERVED_HEADERS`](crate::registry::headers::RESERVED_HEADERS)). POST
/// sends the JSON as the body; GET sends no body and adds the exact JSON as the query
/// parameter `payload` (URL-encoded, after the URL's own query), signed over that JSON.
///
/// An [`HttpClient`](super::HttpClient) therefore receives `host` and `content-length`
/// already set.
pub fn build_request(out: &Outgoing<'_>) -> Result<Request<Bytes>, BuildError> {
    build_request_to(out, None)
}

/// Where a POST goes, prepared once: the engine keeps it with the endpoint it caches, so
/// that neither the URL nor the headers that stay the same are made again for every
/// attempt.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    uri: http::Uri,
    /// Every header of a request, in the order they are sent; the per-attempt ones
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`, `content-length` for a
    /// POST) hold empty values that each attempt replaces. An attempt clones it: two
    /// allocations of the exact size (a map filled header by header reserves half again
    /// as much, over 1 KiB for eight headers).
    headers: HeaderMap,
}

impl Target {
    /// Prepares a POST to `url` with these custom headers and user agent.
    pub(crate) fn post(
        url: &str,
        custom: &[(HeaderName, HeaderValue)],
        user_agent: &HeaderValue,
    ) -> Result<Self, BuildError> {
        Self::new(parse_uri(url.to_owned())?, custom, user_agent, true)
    }

    fn new(
        uri: http::Uri,
        custom: &[(HeaderName, HeaderValue)],
        user_agent: &HeaderValue,
        post: bool,
    ) -> Result<Self, BuildError> {
        let host = host_header(&uri)?;
        let empty = HeaderValue::from_static("");
        let mut h = HeaderMap::with_capacity(7 + custom.len());
        h.insert(WEBHOOK_ID, empty.clone());
        h.insert(WEBHOOK_TIMESTAMP, empty.clone());
        h.insert(WEBHOOK_SIGNATURE, empty.clone());
        if post {
            h.insert(header::CONTENT_LENGTH, empty);
        }
        if let Some(host) = host {
            h.insert(header::HOST, host);
        }
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::USER_AGENT, user_agent.clone());
        for (name, value) in custom {
            h.insert(name.clone(), value.clone());
        }
        Ok(Target { uri, headers: h })
    }
}

/// The `host` header a URI implies: its host, and its port unless that is the scheme's
/// default (as hyper-util's client would add it). `None` for a URI without a host, which
/// the client refuses.
fn host_header(uri: &http::Uri) -> Result<Option<HeaderValue>, BuildError> {
    let Some(host) = uri.host() else {
        return Ok(None);
    };
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => HeaderValue::try_from(format!("{host}:{port}")),
        _ => HeaderValue::try_from(host),
    };
    value
        .map(Some)
        .map_err(|_| BuildError::Url("the host is not a valid header value".into()))
}

/// [`build_request`] with the target of a POST already prepared (from the same URL, custom
/// headers and user agent as `out`'s).
///
/// Every header is set here, `host` and `content-length` included, so that the client
/// adds none. The values made for this attempt (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`, `content-length`) share one buffer: two allocations instead of one
/// or two each.
pub(crate) fn build_request_to(
    out: &Outgoing<'_>,
    prepared: Option<&Target>,
) -> Result<Request<Bytes>, BuildError> {
    let (method, target, body) = match out.method {
        HttpMethod::Post => {
            let target = match prepared {
                Some(t) => t.clone(),
                None => Target::post(out.url, out.headers, out.user_agent)?,
            };
            (Method::POST, target, out.payload.clone())
        }
        HttpMethod::Get => {
            let mut url = url::Url::parse(out.url).map_err(|e| BuildError::Url(e.to_string()))?;
            let json = String::from_utf8_lossy(out.payload);
            url.query_pairs_mut().append_pair("payload", &json);
            let s: String = url.into();
            if s.len() > out.max_get_url {
                return Err(BuildError::GetUrlTooLong {
                    len: s.len(),
                    max: out.max_get_url,
                });
            }
            (
                Method::GET,
                Target::new(parse_uri(s)?, out.headers, out.user_agent, false)?,
                Bytes::new(),
            )
        }
    };

    // The per-attempt values, one after the other in one buffer (room for two numbers of
    // up to 20 digits and every signature with its separator).
    let mut text = String::with_capacity(
        out.message_id.len() + 20 + out.secrets.len() * (signing::SIGNATURE_ENTRY_LEN + 1) + 20,
    );
    text.push_str(out.message_id);
    let id_end = text.len();
    push_display(&mut text, out.timestamp);
    let timestamp_end = text.len();
    signing::push_signature_header(
        &mut text,
        out.secrets,
        out.message_id,
        out.timestamp,
        out.payload,
    );
    let signature_end = text.len();
    if method == Method::POST {
        push_display(&mut text, body.len());
    }
    let text = Bytes::from(text.into_bytes());
    let value = |range: std::ops::Range<usize>| HeaderValue::from_maybe_shared(text.slice(range));

    let Target { uri, mut headers } = target;
    // Replacing a value keeps the header's place.
    headers.insert(
        WEBHOOK_ID,
        value(0..id_end).map_err(|_| BuildError::MessageId)?,
    );
    // Digits and base64 are always valid values; were one not, its header is left out
    // rather than sent empty.
    let mut set = |name: HeaderName, range: std::ops::Range<usize>| match value(range) {
        Ok(v) => headers.insert(name, v),
        Err(_) => headers.remove(name),
    };
    set(WEBHOOK_TIMESTAMP, id_end..timestamp_end);
    set(WEBHOOK_SIGNATURE, timestamp_end..signature_end);
    if method == Method::POST {
        set(header::CONTENT_LENGTH, signature_end..text.len());
    }
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Appends `v` formatted (no allocation: the string has room).
fn push_display(text: &mut String, v: impl std::fmt::Display) {
    use std::fmt::Write as _;
    // Writing to a `String` cannot fail.
    let _ = write!(text, "{v}");
}

fn parse_uri(url: String) -> Result<http::Uri, BuildError> {
    http::Uri::try_from(url).map_err(|e| BuildError::Url(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Verifier;
    use chrono::{TimeZone, Utc};

    fn outgoing<'a>(
        url: &'a str,
        method: HttpMethod,
        headers: &'a [(HeaderName, HeaderValue)],
        secrets: &'a [SigningSecret],
        payload: &'a Bytes,
        ua: &'a HeaderValue,
    ) -> Outgoing<'a> {
        Outgoing {
            url,
            method,
            headers,
            secrets,
            message_id: "msg_2a7Kq",
            timestamp: 1_700_000_000,
            payload,
            user_agent: ua,
            max_get_url: 8192,
        }
    }

    /// A POST to `url` with no custom header and no secret.
    fn bare<'a>(url: &'a str, payload: &'a Bytes, ua: &'a HeaderValue) -> Outgoing<'a> {
        outgoing(url, HttpMethod::Post, &[], &[], payload, ua)
    }

    #[test]
    fn every_header_is_set_and_the_signature_verifies() {
        let secrets = [SigningSecret::generate().unwrap()];
        let payload = Bytes::from_static(br#"{"type":"call.finished"}"#);
        let ua = HeaderValue::from_static("atllas-webhooks");
        for custom in [0, 1, 3] {
            let headers: Vec<(HeaderName, HeaderValue)> = (0..custom)
                .map(|i| {
                    (
                        HeaderName::try_from(format!("x-custom-{i}")).unwrap(),
                        HeaderValue::from_static("v"),
                    )
                })
                .collect();
            let out = outgoing(
                "https://example.com/hook",
                HttpMethod::Post,
                &headers,
                &secrets,
                &payload,
                &ua,
            );
            let req = build_request(&out).unwrap();
            let h = req.headers();
            assert_eq!(h.len(), 7 + custom, "{custom} custom headers");
            let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            let mut want = vec![
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "content-length",
                "host",
                "content-type",
                "user-agent",
            ];
            let customs: Vec<String> = (0..custom).map(|i| format!("x-custom-{i}")).collect();
            want.extend(customs.iter().map(String::as_str));
            assert_eq!(names, want, "the order they are sent in");
            assert_eq!(h[header::HOST], "example.com");
            assert_eq!(
                h[header::CONTENT_LENGTH],
                payload.len().to_string().as_str()
            );
            assert_eq!(h[WEBHOOK_ID], "msg_2a7Kq");
            assert_eq!(h[WEBHOOK_TIMESTAMP], "1700000000");
            assert_eq!(h[header::CONTENT_TYPE], "application/json");
            assert_eq!(h[header::USER_AGENT], "atllas-webhooks");
            let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
            let verified = Verifier::new(secrets[0].clone())
                .verify(h, req.body(), now)
                .unwrap();
            assert_eq!(verified.id, "msg_2a7Kq");
            // A prepared target gives the same request.
            let target = Target::post(out.url, out.headers, out.user_agent).unwrap();
            let again = build_request_to(&out, Some(&target)).unwrap();
            assert_eq!(again.headers(), req.headers());
            let again_names: Vec<&str> = again.headers().keys().map(HeaderName::as_str).collect();
            assert_eq!(again_names, names);
            assert_eq!(again.uri(), req.uri());
        }
    }

    #[test]
    fn two_secrets_sign_twice_and_no_secret_signs_empty() {
        let secrets = [
            SigningSecret::generate().unwrap(),
            SigningSecret::generate().unwrap(),
        ];
        let payload = Bytes::from_static(b"{}");
        let ua = HeaderValue::from_static("ua");
        let two = outgoing(
            "https://example.com/",
            HttpMethod::Post,
            &[],
            &secrets,
            &payload,
            &ua,
        );
        let req = build_request(&two).unwrap();
        let sig = req.headers()[WEBHOOK_SIGNATURE].to_str().unwrap();
        assert_eq!(
            sig,
            signing::signature_header(&secrets, "msg_2a7Kq", 1_700_000_000, b"{}")
        );
        assert_eq!(sig.split(' ').count(), 2);
        let none = bare("https://example.com/", &payload, &ua);
        let req = build_request(&none).unwrap();
        assert_eq!(req.headers()[WEBHOOK_SIGNATURE], "");
        assert_eq!(req.headers()[header::CONTENT_LENGTH], "2");
    }

    #[test]
    fn a_custom_user_agent_replaces_the_default_in_its_place_and_an_empty_body_has_a_length() {
        let payload = Bytes::new();
        let ua = HeaderValue::from_static("atllas-webhooks");
        let headers = [(header::USER_AGENT, HeaderValue::from_static("acme/2"))];
        let out = outgoing(
            "https://example.com/",
            HttpMethod::Post,
            &headers,
            &[],
            &payload,
            &ua,
        );
        let prepared = Target::post(out.url, out.headers, out.user_agent).unwrap();
        for req in [
            build_request(&out).unwrap(),
            build_request_to(&out, Some(&prepared)).unwrap(),
        ] {
            let h = req.headers();
            assert_eq!(h.get_all(header::USER_AGENT).iter().count(), 1);
            assert_eq!(h[header::USER_AGENT], "acme/2");
            assert_eq!(h.keys().nth(6), Some(&header::USER_AGENT));
            assert_eq!(h[header::CONTENT_LENGTH], "0");
        }
    }

    #[test]
    fn the_host_header_names_a_port_only_when_it_is_not_the_default() {
        let payload = Bytes::from_static(b"{}");
        let ua = HeaderValue::from_static("ua");
        for (url, host) in [
            ("https://example.com/hook", "example.com"),
            ("https://example.com:443/hook", "example.com"),
            ("https://example.com:8443/hook", "example.com:8443"),
            ("http://example.com/hook", "example.com"),
            ("http://example.com:80/hook", "example.com"),
            ("http://example.com:443/hook", "example.com:443"),
            ("http://[::1]:9000/hook", "[::1]:9000"),
            ("http://127.0.0.1:8080/", "127.0.0.1:8080"),
        ] {
            let out = bare(url, &payload, &ua);
            let req = build_request(&out).unwrap();
            assert_eq!(req.headers()[header::HOST], host, "{url}");
        }
    }

    #[test]
    fn a_get_carries_the_payload_in_the_query_and_no_content_length() {
        let payload = Bytes::from_static(br#"{"a":1}"#);
        let ua = HeaderValue::from_static("ua");
        let out = outgoing(
            "https://example.com:8443/hook?x=1",
            HttpMethod::Get,
            &[],
            &[],
            &payload,
            &ua,
        );
        let req = build_request(&out).unwrap();
        assert_eq!(req.method(), Method::GET);
        assert!(req.body().is_empty());
        assert!(!req.headers().contains_key(header::CONTENT_LENGTH));
        assert_eq!(req.headers()[header::HOST], "example.com:8443");
        let query = req.uri().query().unwrap();
        assert!(query.starts_with("x=1&payload="), "{query}");
    }

    #[test]
    fn a_message_id_that_is_no_header_value_is_refused() {
        let payload = Bytes::from_static(b"{}");
        let ua = HeaderValue::from_static("ua");
        let mut out = bare("https://example.com/", &payload, &ua);
        out.message_id = "msg\nX";
        assert_eq!(build_request(&out).unwrap_err(), BuildError::MessageId);
    }
}

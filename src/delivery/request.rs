//! Building the signed HTTP request of one attempt.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, header};

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

/// Builds the request: `webhook-id`, `webhook-timestamp`, `webhook-signature` (one per
/// secret), `content-type: application/json`, `user-agent`, then the custom headers. POST
/// sends the JSON as the body; GET sends no body and adds the exact JSON as the query
/// parameter `payload` (URL-encoded, after the URL's own query), signed over that JSON.
pub fn build_request(out: &Outgoing<'_>) -> Result<Request<Bytes>, BuildError> {
    build_request_to(out, None)
}

/// [`build_request`] with the URL of a POST already parsed (the engine keeps it with the
/// endpoint it caches, so that it is not parsed again for every attempt).
pub(crate) fn build_request_to(
    out: &Outgoing<'_>,
    parsed: Option<&http::Uri>,
) -> Result<Request<Bytes>, BuildError> {
    let signature =
        signing::signature_header(out.secrets, out.message_id, out.timestamp, out.payload);
    let (method, uri, body) = match out.method {
        HttpMethod::Post => {
            let uri = match parsed {
                Some(u) => u.clone(),
                None => parse_uri(out.url.to_owned())?,
            };
            (Method::POST, uri, out.payload.clone())
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
            (Method::GET, parse_uri(s)?, Bytes::new())
        }
    };
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    // Ours, the custom ones, and `host`, which the client adds: room for all from the
    // start (a header map that grows allocates and rehashes).
    h.reserve(6 + out.headers.len());
    h.insert(
        WEBHOOK_ID,
        HeaderValue::from_str(out.message_id).map_err(|_| BuildError::MessageId)?,
    );
    h.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(out.timestamp));
    if let Ok(v) = HeaderValue::from_str(&signature) {
        h.insert(WEBHOOK_SIGNATURE, v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::USER_AGENT, out.user_agent.clone());
    for (name, value) in out.headers {
        h.insert(name.clone(), value.clone());
    }
    Ok(req)
}

fn parse_uri(url: String) -> Result<http::Uri, BuildError> {
    http::Uri::try_from(url).map_err(|e| BuildError::Url(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_map_has_room_for_the_host_header() {
        let secrets = [SigningSecret::generate().unwrap()];
        let payload = Bytes::from_static(b"{}");
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
            let out = Outgoing {
                url: "https://example.com/hook",
                method: HttpMethod::Post,
                headers: &headers,
                secrets: &secrets,
                message_id: "msg_1",
                timestamp: 1,
                payload: &payload,
                user_agent: &ua,
                max_get_url: 8192,
            };
            let mut req = build_request(&out).unwrap();
            let room = req.headers().capacity();
            req.headers_mut()
                .insert(header::HOST, HeaderValue::from_static("example.com"));
            assert_eq!(req.headers().capacity(), room, "{custom} custom headers");
        }
    }
}

//! The trigger path: `POST /{slug}` with a `calls.execute` body places a call.
//!
//! [`InboundHandler::handle`] takes an `http::Request<Bytes>` and returns an
//! `http::Response<Bytes>`, so any server (axum, hyper, actix) can mount it without this
//! crate depending on one. Every request, accepted or not, lands in the account's request
//! log (requests to unknown slugs in the unattributed log).
//!
//! | status | code | when |
//! | --- | --- | --- |
//! | 201 | — | accepted: body exactly `{"success":true}` (also when the call is recorded cancelled: inactive campaign, no prompt, out of credits) |
//! | 400 | `malformed_json`, `body_not_object`, `duplicate_key`, `missing_type`, `invalid_type`, `missing_data`, `invalid_data`, `invalid_idempotency_key` | not a `calls.execute` |
//! | 404 | `not_found` | unknown or disabled slug (the same answer for both) |
//! | 405 | `method_not_allowed` | not POST; `Allow: POST` |
//! | 409 | `idempotency_in_progress` | a request with the same `Idempotency-Key` is still being handled |
//! | 413 | `payload_too_large` | body over the limit (default 64 KiB), checked before parsing |
//! | 422 | `missing_phone_number`, `invalid_phone_number`, `invalid_field_type`, `field_too_long` | unusable `data` |
//! | 429 | `rate_limited` | the slug's token bucket is empty; `Retry-After` says when to retry |
//! | 503 | `unavailable` | the store failed; nothing was recorded, retry later |
//!
//! Errors answer `{"success":false,"error":{"code":"…","message":"…","field":"…"}}`; `field`
//! is present when the error is about one field.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use serde::Serialize;

use crate::calls::{CallService, CallsError, PlaceOutcome, Placed};
use crate::clock::Clock;
use crate::ids::{AccountId, CallId};
use crate::model::Contact;
use crate::store::{
    CallOrigin, IdempotencyClaim, InboundWebhook, RequestLogEntry, RequestOutcome, Store,
    StoreError, StoredResponse,
};
use crate::validate::{CountryCode, ExecuteError, IgnoredKey, ParseOptions, read_calls_execute};

mod rate_limit;

pub use rate_limit::RateLimit;

/// The exact body of an accepted request.
pub const SUCCESS_BODY: &[u8] = br#"{"success":true}"#;

/// Longest slug looked up; longer paths are unknown slugs.
const MAX_SLUG_LEN: usize = 64;

/// Settings of the inbound path.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// Largest accepted body, in bytes (default 64 KiB). Servers should also stop reading
    /// at this size ([`InboundHandler::body_limit`]).
    pub body_limit: usize,
    /// Per-slug token bucket; `None` disables rate limiting.
    pub rate_limit: Option<RateLimit>,
    /// Calling code for national phone numbers; `None` refuses them.
    pub default_country: Option<CountryCode>,
    /// How long an `Idempotency-Key` is remembered (default 24 h).
    pub idempotency_ttl: chrono::Duration,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            body_limit: 64 * 1024,
            rate_limit: Some(RateLimit::default()),
            default_country: None,
            idempotency_ttl: chrono::Duration::hours(24),
        }
    }
}

/// An error answer of the inbound path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The field it is about.
    pub field: Option<String>,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

impl InboundError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        InboundError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no inbound webhook at this URL",
        )
    }

    fn body(&self) -> Bytes {
        #[derive(Serialize)]
        struct Body<'a> {
            success: bool,
            error: Detail<'a>,
        }
        #[derive(Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        let body = Body {
            success: false,
            error: Detail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}

impl From<ExecuteError> for InboundError {
    fn from(e: ExecuteError) -> Self {
        InboundError {
            status: StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: e.code(),
            message: e.to_string(),
            field: e.field(),
            retry_after: None,
        }
    }
}

/// Serves `POST /{slug}`.
pub struct InboundHandler<S: ?Sized> {
    store: Arc<S>,
    calls: Arc<CallService<S>>,
    config: InboundConfig,
    limiter: Option<rate_limit::Limiter>,
    clock: Arc<dyn Clock>,
}

impl<S: ?Sized> std::fmt::Debug for InboundHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundHandler")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What one request led to, for the log.
struct Handled {
    response: Response<Bytes>,
    outcome: RequestOutcome,
    code: Option<&'static str>,
    message: Cow<'static, str>,
    ignored: Vec<IgnoredKey>,
    call_id: Option<CallId>,
}

impl Handled {
    fn error(e: InboundError, ignored: Vec<IgnoredKey>) -> Self {
        Handled {
            response: error_response(&e),
            code: Some(e.code),
            message: Cow::Owned(e.message),
            outcome: RequestOutcome::Rejected,
            ignored,
            call_id: None,
        }
    }

    /// [`Handled::error`] boxed: refusals are rare, so the `Result`s that carry them stay
    /// small on the path that places calls.
    fn refusal(e: InboundError, ignored: Vec<IgnoredKey>) -> Box<Self> {
        Box::new(Self::error(e, ignored))
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &InboundError) -> Response<Bytes> {
    let mut r = json_response(e.status, e.body());
    if e.status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn unavailable(e: impl std::fmt::Display) -> InboundError {
    InboundError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("temporarily unavailable, retry later ({e})"),
    )
}

impl<S: Store + ?Sized> InboundHandler<S> {
    /// A handler over `store`, placing calls with `calls`, on the clock of `calls`.
    pub fn new(store: Arc<S>, calls: Arc<CallService<S>>, config: InboundConfig) -> Self {
        InboundHandler {
            limiter: config.rate_limit.map(rate_limit::Limiter::new),
            clock: calls.clock().clone(),
            store,
            calls,
            config,
        }
    }

    /// Uses another clock. It times each request: the rate limit, the idempotency window,
    /// the log entry, and the call it places (one instant for all of them).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The body limit, for servers that cap how much they read.
    pub fn body_limit(&self) -> usize {
        self.config.body_limit
    }

    /// Handles a request whose path is `/{slug}`.
    pub fn handle(&self, req: Request<Bytes>) -> impl Future<Output = Response<Bytes>> + '_ {
        self.respond(None, req)
    }

    /// Handles a request for `slug`, for routers that extract the slug themselves.
    pub fn handle_slug<'a>(
        &'a self,
        slug: &'a str,
        req: Request<Bytes>,
    ) -> impl Future<Output = Response<Bytes>> + 'a {
        self.respond(Some(slug), req)
    }

    // One future for the whole request, with `CallService::place`'s as its only large part:
    // a future is copied whole each time one is started inside another, so the steps below
    // are plain functions around the few awaits.
    async fn respond(&self, slug: Option<&str>, req: Request<Bytes>) -> Response<Bytes> {
        let slug = slug.unwrap_or_else(|| req.uri().path().trim_start_matches('/'));
        let now = self.clock.now();
        let plausible = !slug.is_empty()
            && slug.len() <= MAX_SLUG_LEN
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let webhook = if plausible {
            match self.store.inbound_by_slug(slug).await {
                Ok(w) => w,
                Err(e) => return error_response(&unavailable(e)),
            }
        } else {
            None
        };
        let handled = match &webhook {
            Some(w) if w.enabled => match self.admit(w, &req, now) {
                Err(refused) => *refused,
                Ok(key) => {
                    let replayed = match &key {
                        Some(key) => self.claim(w, key, now).await,
                        None => None,
                    };
                    match replayed {
                        Some(answer) => answer,
                        None => {
                            let handled = match self.parse(req.body()) {
                                Err(refused) => *refused,
                                Ok((contact, ignored)) => placed(
                                    self.calls
                                        .place_at(
                                            &w.account,
                                            w.campaign_id.as_ref(),
                                            inbound_origin(w),
                                            contact,
                                            now,
                                        )
                                        .await,
                                    ignored,
                                ),
                            };
                            if let Some(key) = &key {
                                self.remember(w, key, &handled).await;
                            }
                            handled
                        }
                    }
                }
            },
            _ => Handled::error(InboundError::not_found(), Vec::new()),
        };
        // The fetched webhook is not needed any more: its ids and slug (the one requested,
        // since it was found by it) move into the entry.
        let slug_known = webhook.is_some();
        let (account, webhook_id, slug) = match webhook {
            Some(w) => (Some(w.account), Some(w.id), Some(w.slug)),
            None => (
                None,
                None,
                (!slug.is_empty()).then(|| shown(slug).to_owned()),
            ),
        };
        let entry = RequestLogEntry {
            account,
            webhook_id,
            slug,
            slug_known,
            at: now,
            status: handled.response.status().as_u16(),
            outcome: handled.outcome,
            code: handled.code.map(Cow::Borrowed),
            message: handled.message,
            ignored_keys: handled.ignored,
            call_id: handled.call_id,
        };
        // A failed log write does not change the answer: the call (if any) is stored.
        let _ = self.store.append_request(entry).await;
        handled.response
    }

    /// The checks before the body is read: method, rate limit, size, `Idempotency-Key`
    /// (returned when there is one).
    fn admit(
        &self,
        w: &InboundWebhook,
        req: &Request<Bytes>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Box<Handled>> {
        if req.method() != Method::POST {
            return Err(Handled::refusal(
                InboundError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{} is not allowed; send POST", req.method()),
                ),
                Vec::new(),
            ));
        }
        if let Some(limiter) = &self.limiter
            && let Err(wait) = limiter.check(w.id.as_str(), now)
        {
            let mut e = InboundError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests to this webhook; retry in {wait} s"),
            );
            e.retry_after = Some(wait);
            return Err(Handled::refusal(e, Vec::new()));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let limit = self.config.body_limit;
        if req.body().len() > limit || declared > limit as u64 {
            return Err(Handled::refusal(
                InboundError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body is larger than {limit} bytes"),
                ),
                Vec::new(),
            ));
        }
        idempotency_key(req).map_err(|e| Handled::refusal(e, Vec::new()))
    }

    /// Claims an `Idempotency-Key`: `None` to go on, or the answer (the stored one replayed,
    /// or a refusal).
    async fn claim(&self, w: &InboundWebhook, key: &str, now: DateTime<Utc>) -> Option<Handled> {
        let expires = now + self.config.idempotency_ttl;
        match self
            .store
            .claim_idempotent(&w.account, &w.id, key, now, expires)
            .await
        {
            Ok(IdempotencyClaim::New) => None,
            Ok(IdempotencyClaim::InFlight) => Some(Handled::error(
                InboundError::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being handled",
                ),
                Vec::new(),
            )),
            Ok(IdempotencyClaim::Done(stored)) => {
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                let mut response = json_response(status, stored.body);
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                Some(Handled {
                    response,
                    outcome: RequestOutcome::Replayed,
                    code: None,
                    message: Cow::Borrowed(
                        "repeat of an earlier request with the same Idempotency-Key; no new call",
                    ),
                    ignored: Vec::new(),
                    call_id: stored.call_id,
                })
            }
            Err(e) => Some(Handled::error(unavailable(e), Vec::new())),
        }
    }

    /// Remembers the answer to a claimed `Idempotency-Key` (gives the key up after a 5xx,
    /// so that a retry is handled afresh). The answer stands even if this fails.
    async fn remember(&self, w: &InboundWebhook, key: &str, handled: &Handled) {
        let status = handled.response.status();
        let _ = if status.is_server_error() {
            self.store.abandon_idempotent(&w.account, &w.id, key).await
        } else {
            let stored = StoredResponse {
                status: status.as_u16(),
                body: handled.response.body().clone(),
                call_id: handled.call_id.clone(),
            };
            self.store
                .finish_idempotent(&w.account, &w.id, key, &stored)
                .await
        };
    }

    /// The contact to call and the keys that were ignored, or the refusal.
    fn parse(&self, body: &Bytes) -> Result<(Contact, Vec<IgnoredKey>), Box<Handled>> {
        let options = ParseOptions {
            default_country: self.config.default_country,
        };
        match read_calls_execute(body, &options) {
            Ok((request, ignored)) => Ok((request.data, ignored)),
            Err(rejected) => Err(Handled::refusal(rejected.error.into(), rejected.ignored)),
        }
    }

    /// The account's request log, newest first (`None`: requests to unknown slugs).
    pub async fn request_log(
        &self,
        account: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<RequestLogEntry>, StoreError> {
        self.store.requests(account, limit).await
    }
}

/// Where a call placed through `w` comes from.
fn inbound_origin(w: &InboundWebhook) -> CallOrigin {
    CallOrigin::InboundWebhook {
        webhook: w.id.clone(),
    }
}

/// The answer to a request that asked for a call: 201 whether the call was placed or
/// recorded cancelled, 503 when it could not be stored.
fn placed(result: Result<Placed, CallsError>, ignored: Vec<IgnoredKey>) -> Handled {
    let placed = match result {
        Ok(p) => p,
        Err(e) => return Handled::error(unavailable(e), ignored),
    };
    let (outcome, mut message) = match &placed.outcome {
        PlaceOutcome::Placed => (RequestOutcome::Placed, Cow::Borrowed("call placed")),
        PlaceOutcome::Cancelled(reason) => (
            RequestOutcome::Cancelled,
            Cow::Owned(format!("call recorded as cancelled: {reason}")),
        ),
    };
    if !ignored.is_empty() {
        let keys: Vec<String> = ignored.iter().map(ToString::to_string).collect();
        message
            .to_mut()
            .push_str(&format!("; ignored keys: {}", keys.join(", ")));
    }
    Handled {
        response: json_response(StatusCode::CREATED, Bytes::from_static(SUCCESS_BODY)),
        outcome,
        code: None,
        message,
        ignored,
        call_id: Some(placed.call.id),
    }
}

/// The first [`MAX_SLUG_LEN`] characters of a requested slug, as the log shows it.
fn shown(slug: &str) -> &str {
    if slug.len() <= MAX_SLUG_LEN {
        return slug;
    }
    match slug.char_indices().nth(MAX_SLUG_LEN) {
        Some((end, _)) => &slug[..end],
        None => slug,
    }
}

/// The `Idempotency-Key` header's name.
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The `Idempotency-Key` header: at most 255 visible ASCII characters.
fn idempotency_key(req: &Request<Bytes>) -> Result<Option<String>, InboundError> {
    let Some(v) = req.headers().get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = || {
        let mut e = InboundError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        );
        e.field = Some("Idempotency-Key".into());
        e
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

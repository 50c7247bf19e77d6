//! One attempt at a time: lease, sign, send, log, decide. The worker loop (feature
//! `worker`) runs many of these at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderValue;
use serde::Serialize;

use super::DeliveryError;
use super::client::{HttpClient, HttpResponse, TransportError, TransportErrorKind};
use super::request::{BuildError, Outgoing, Target, build_request_to};
use super::retry::{RetrySchedule, retry_after};
use crate::destination::check_url;
use crate::fixtures::test_button_payload;
use crate::ids::{AccountId, DeliveryId, MessageId, WebhookId};
use crate::model::{CallCompleted, HttpMethod};
use crate::registry::{CustomHeader, Registry, UnsealedEndpoint};
use crate::signing::SigningSecret;
use crate::store::{
    Delivery, DeliveryAttempt, DeliveryFilter, DeliveryState, Lease, LeaseOutcome, Store,
    StoreError,
};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts and delays (default: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h,
    /// ±20 %).
    pub retry: RetrySchedule,
    /// How long a worker holds a delivery for one attempt (default 60 s). Must outlast
    /// `request_timeout`, or a slow attempt's delivery is leased again and sent twice.
    pub lease: Duration,
    /// How long one attempt's exchange may take (default 15 s); shorter than `lease`. The
    /// worker ([`run`](DeliveryEngine::run)) enforces it on any client whose future yields
    /// to the runtime, so a slow attempt always ends before its lease. [`attempt`](DeliveryEngine::attempt),
    /// [`run_once`](DeliveryEngine::run_once) and the Test button use the client's own
    /// timeout (they need no runtime); give the client the same one.
    pub request_timeout: Duration,
    /// Deliveries leased per round (default 64).
    pub batch_size: usize,
    /// Attempts in flight at most (default 256).
    pub max_in_flight: usize,
    /// Attempts in flight per endpoint at most (default 8), so a slow endpoint cannot take
    /// every slot.
    pub per_endpoint: usize,
    /// A saturated endpoint's extra deliveries are put back for this long (default 1 s).
    pub saturated_backoff: Duration,
    /// An endpoint with no success for this long while its deliveries keep failing is
    /// disabled (default 5 days).
    pub disable_after: chrono::Duration,
    /// Response body kept in the delivery log (default 1 KiB).
    pub log_body_limit: usize,
    /// The longest `Retry-After` honoured (default 6 h); a longer one is cut to this.
    pub retry_after_max: Duration,
    /// The longest GET URL (with the `payload` parameter) sent (default 8 KiB); a longer
    /// one makes the delivery a dead letter with a message that says to use POST.
    pub max_get_url: usize,
    /// `user-agent` of every request.
    pub user_agent: String,
    /// Longest sleep of an idle worker before it looks at the queue again (default 1 s).
    pub idle_poll: Duration,
    /// How long a stopping worker waits for attempts in flight (default 20 s); the rest
    /// are released to the queue.
    pub shutdown_grace: Duration,
    /// How long an endpoint, unsealed, is reused between attempts (default 1 s). Edits,
    /// disabling and deletion reach the engine within this time; `Duration::ZERO` reads the
    /// endpoint on every attempt. Successes also update `last_success_at` at most this
    /// often per endpoint.
    pub endpoint_cache_ttl: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry: RetrySchedule::default(),
            lease: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            batch_size: 64,
            max_in_flight: 256,
            per_endpoint: 8,
            saturated_backoff: Duration::from_secs(1),
            disable_after: chrono::Duration::days(5),
            log_body_limit: 1024,
            retry_after_max: Duration::from_secs(6 * 3600),
            max_get_url: 8 * 1024,
            user_agent: format!("atllas-webhooks/{}", env!("CARGO_PKG_VERSION")),
            idle_poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
            endpoint_cache_ttl: Duration::from_secs(1),
        }
    }
}

/// How the delivery log classifies an attempt, as the documentation's debugging section
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AttemptClass {
    /// 200–299.
    Success,
    /// 400–499: check your endpoint.
    ClientError,
    /// 500–599: your endpoint is down.
    ServerError,
    /// Other statuses (1xx, 3xx: redirects are not followed).
    Other,
    /// No HTTP status: network or timeout failure.
    Errored,
}

/// Classifies an HTTP status (or its absence).
pub fn classify(status: Option<u16>) -> AttemptClass {
    match status {
        None => AttemptClass::Errored,
        Some(200..=299) => AttemptClass::Success,
        Some(400..=499) => AttemptClass::ClientError,
        Some(500..=599) => AttemptClass::ServerError,
        Some(_) => AttemptClass::Other,
    }
}

impl DeliveryAttempt {
    /// This attempt's class.
    pub fn class(&self) -> AttemptClass {
        classify(self.status)
    }
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The HTTP status, if any.
    pub status: Option<u16>,
    /// Whether it was delivered.
    pub success: bool,
    /// When it is tried again, if it is.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Whether it is now a dead letter.
    pub dead: bool,
}

/// The Test button's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    /// The tested webhook (a fresh id for an unsaved configuration).
    pub webhook_id: WebhookId,
    /// The test message's `webhook-id`.
    pub message_id: MessageId,
    /// Whether an HTTP response came back.
    pub reachable: bool,
    /// The HTTP status.
    pub status: Option<u16>,
    /// Whether the endpoint answered 2xx.
    pub success: bool,
    /// How the attempt classifies.
    pub class: AttemptClass,
    /// A hint at what to fix, e.g. on 401 or 403.
    pub hint: Option<String>,
    /// The response body, truncated.
    pub body_excerpt: String,
    /// The transport error, if it errored.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// An unsaved webhook configuration to test before saving.
#[derive(Debug, Clone)]
pub struct TestConfig {
    /// URL.
    pub url: String,
    /// POST or GET.
    pub method: HttpMethod,
    /// Custom headers.
    pub headers: Vec<CustomHeader>,
    /// Sign with this secret; a throwaway one when `None`.
    pub signing_secret: Option<SigningSecret>,
}

/// The delivery engine over a store: attempts, retries, logs, the Test button, redelivery.
pub struct DeliveryEngine<S: ?Sized> {
    pub(crate) registry: Arc<Registry<S>>,
    pub(crate) client: Arc<dyn HttpClient>,
    pub(crate) config: DeliveryConfig,
    user_agent: HeaderValue,
    cache: EndpointCache,
}

impl<S: ?Sized> std::fmt::Debug for DeliveryEngine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Unsealed endpoints reused between attempts, and when each last had its health written.
struct EndpointCache {
    ttl: Duration,
    entries: std::sync::Mutex<foldhash::HashMap<WebhookId, CacheEntry>>,
}

struct CacheEntry {
    fetched: Instant,
    endpoint: Arc<UnsealedEndpoint>,
    cached: Cached,
}

/// What the cache keeps beside an unsealed endpoint; an attempt takes a copy with the
/// endpoint (one lock per attempt).
#[derive(Debug, Clone)]
struct Cached {
    /// The URL parsed and the headers that stay the same made once (POST endpoints; a GET
    /// URL changes with every payload). Shared: an attempt copies it once, into its
    /// request.
    target: Option<Arc<Target>>,
    /// The endpoint's failing state as last written.
    failing: bool,
    /// When a success was last written.
    success_written: Option<DateTime<Utc>>,
}

/// Entries kept at most; past this the cache starts over.
const CACHE_MAX: usize = 10_000;

impl EndpointCache {
    fn new(ttl: Duration) -> Self {
        EndpointCache {
            ttl,
            entries: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, foldhash::HashMap<WebhookId, CacheEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: &WebhookId) -> Option<(Arc<UnsealedEndpoint>, Cached)> {
        if self.ttl.is_zero() {
            return None;
        }
        let g = self.lock();
        g.get(id)
            .filter(|e| e.fetched.elapsed() < self.ttl)
            .map(|e| (e.endpoint.clone(), e.cached.clone()))
    }

    fn put(
        &self,
        id: WebhookId,
        endpoint: Arc<UnsealedEndpoint>,
        user_agent: &http::HeaderValue,
    ) -> Cached {
        let target = (endpoint.endpoint.method == HttpMethod::Post)
            .then(|| Target::post(&endpoint.endpoint.url, &endpoint.headers, user_agent).ok())
            .flatten()
            .map(Arc::new);
        let mut g = self.lock();
        if g.len() >= CACHE_MAX {
            g.clear();
        }
        let previous = g.remove(&id);
        let cached = Cached {
            target,
            failing: endpoint.endpoint.failing_since.is_some(),
            success_written: previous
                .and_then(|p| p.cached.success_written)
                .or(endpoint.endpoint.last_success_at),
        };
        if !self.ttl.is_zero() {
            g.insert(
                id,
                CacheEntry {
                    fetched: Instant::now(),
                    endpoint,
                    cached: cached.clone(),
                },
            );
        }
        cached
    }

    fn forget(&self, id: &WebhookId) {
        self.lock().remove(id);
    }

    /// Whether a success must be written now: the endpoint was failing, or no success was
    /// written within the TTL.
    fn needs_success_write(&self, cached: &Cached, now: DateTime<Utc>) -> bool {
        self.ttl.is_zero()
            || cached.failing
            || cached
                .success_written
                .is_none_or(|t| (now - t).to_std().unwrap_or_default() >= self.ttl)
    }

    /// Remembers what was written.
    fn note_health(&self, e: &crate::store::Endpoint, now: DateTime<Utc>) {
        let mut g = self.lock();
        if let Some(c) = g.get_mut(&e.id) {
            c.cached.failing = e.failing_since.is_some();
            if e.failing_since.is_none() {
                c.cached.success_written = Some(now);
            }
        }
    }
}

/// The body cut to `limit` bytes at a character boundary, lossily decoded.
fn excerpt(body: &[u8], limit: usize) -> String {
    let cut = &body[..body.len().min(limit)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if body.len() > limit {
        s.push('…');
    }
    s
}

fn hint(result: &Result<HttpResponse, TransportError>) -> Option<String> {
    match result {
        Ok(r) => match r.status.as_u16() {
            401 | 403 => Some(
                "the endpoint refused the request: check the custom headers (e.g. Authorization) and that the API key has not expired".into(),
            ),
            404 => Some("the endpoint answered 404: check the URL".into()),
            300..=399 => Some("redirects are not followed: use the final URL".into()),
            500..=599 => Some("the endpoint is failing (5xx): check its server logs".into()),
            _ => None,
        },
        Err(e) => Some(match e.kind {
            TransportErrorKind::Timeout => "the endpoint did not answer in time".into(),
            TransportErrorKind::Dns => "the host name does not resolve: check the URL".into(),
            TransportErrorKind::Connect => "nothing accepted the connection: is the endpoint up?".into(),
            TransportErrorKind::Tls => "the TLS handshake failed: check the endpoint's certificate".into(),
            TransportErrorKind::Blocked => "the destination is a private or reserved address, which is refused".into(),
            TransportErrorKind::Other => "the endpoint's answer could not be read".into(),
        }),
    }
}

impl<S: Store + ?Sized> DeliveryEngine<S> {
    /// An engine over the registry's store, sending with `client`.
    pub fn new(
        registry: Arc<Registry<S>>,
        client: Arc<dyn HttpClient>,
        config: DeliveryConfig,
    ) -> Result<Self, DeliveryError> {
        if config.lease <= config.request_timeout {
            return Err(DeliveryError::Config(format!(
                "the lease ({:?}) must outlast the request timeout ({:?}), or slow attempts are sent twice",
                config.lease, config.request_timeout
            )));
        }
        if config.retry.delays.is_empty() {
            return Err(DeliveryError::Config("the retry schedule is empty".into()));
        }
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| DeliveryError::Config("invalid user agent".into()))?;
        Ok(DeliveryEngine {
            cache: EndpointCache::new(config.endpoint_cache_ttl),
            registry,
            client,
            config,
            user_agent,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry<S>> {
        &self.registry
    }

    fn store(&self) -> &Arc<S> {
        self.registry.store()
    }

    fn now(&self) -> DateTime<Utc> {
        self.registry.clock().now()
    }

    /// Leases up to `limit` due deliveries.
    pub async fn lease(&self, limit: usize) -> Result<Vec<Lease>, DeliveryError> {
        Ok(self
            .store()
            .lease(self.now(), limit, self.config.lease)
            .await?)
    }

    /// Leases due deliveries and attempts each once, one after another; returns the
    /// reports. The worker does the same concurrently; this is for tests and for
    /// applications that drive delivery themselves. Attempts are bounded by the client's own
    /// timeout ([`HttpClient::send`]), not by `request_timeout`.
    pub async fn run_once(&self, limit: usize) -> Result<Vec<AttemptReport>, DeliveryError> {
        let mut out = Vec::new();
        for lease in self.lease(limit).await? {
            out.push(self.attempt(lease).await?);
        }
        Ok(out)
    }

    /// Sends one leased delivery once, logs the attempt and records its outcome. The attempt
    /// is bounded by the client's own timeout ([`HttpClient::send`]), not by
    /// `request_timeout`.
    pub async fn attempt(&self, lease: Lease) -> Result<AttemptReport, DeliveryError> {
        self.attempt_leased(&Arc::new(lease), None, &mut Direct)
            .await
    }

    /// The endpoint of a delivery, unsealed, from a cache of at most
    /// [`DeliveryConfig::endpoint_cache_ttl`] age (edits, disabling and deletion take effect
    /// within that time).
    async fn endpoint_for(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<Result<(Arc<UnsealedEndpoint>, Cached), LeaseOutcome>, DeliveryError> {
        if let Some(hit) = self.cache.get(id) {
            return Ok(Ok(hit));
        }
        let endpoint = match self.store().endpoint(account, id).await {
            Ok(e) => e,
            Err(StoreError::NotFound { .. }) => {
                return Ok(Err(LeaseOutcome::Dead {
                    error: "webhook deleted".into(),
                }));
            }
            Err(e) => return Err(e.into()),
        };
        if !endpoint.enabled {
            let why = endpoint
                .disabled_reason
                .clone()
                .unwrap_or_else(|| "disabled".into());
            return Ok(Err(LeaseOutcome::Dead {
                error: format!("webhook disabled: {why}"),
            }));
        }
        let unsealed = Arc::new(self.registry.unseal_endpoint(endpoint)?);
        let cached = self
            .cache
            .put(id.clone(), unsealed.clone(), &self.user_agent);
        Ok(Ok((unsealed, cached)))
    }

    pub(crate) async fn attempt_leased(
        &self,
        lease: &Arc<Lease>,
        sink: Option<&dyn Sink>,
        exchange: &mut impl Exchange,
    ) -> Result<AttemptReport, DeliveryError> {
        let now = self.now();
        let d = &lease.delivery;
        let attempt = d.attempts + 1;
        let (unsealed, cached) = match self.endpoint_for(&d.account, &d.endpoint_id).await {
            Ok(Ok(u)) => u,
            Ok(Err(outcome)) => {
                return self
                    .finish(lease, attempt, None, outcome, now, sink, None)
                    .await;
            }
            Err(DeliveryError::Registry(e)) => {
                // A missing key: an operator error that retrying can outlast.
                let error = format!("cannot unseal the webhook's secrets: {e}");
                let outcome = match self.config.retry.next_attempt(attempt, now) {
                    Some(at) => LeaseOutcome::Retry {
                        next_attempt_at: at,
                        error,
                    },
                    None => LeaseOutcome::Dead { error },
                };
                return self
                    .finish(lease, attempt, None, outcome, now, sink, None)
                    .await;
            }
            Err(e) => return Err(e),
        };
        let request = match self.request_for(
            &unsealed,
            cached.target.as_deref(),
            d.message_id.as_str(),
            &d.payload,
            now,
        ) {
            Ok(r) => r,
            Err(e) => {
                let error = e.to_string();
                let logged = self
                    .log(
                        &lease.delivery,
                        attempt,
                        now,
                        &Err(TransportError::new(
                            TransportErrorKind::Other,
                            error.clone(),
                        )),
                        0,
                        false,
                        None,
                        sink,
                    )
                    .await?;
                return self
                    .finish(
                        lease,
                        attempt,
                        None,
                        LeaseOutcome::Dead { error },
                        now,
                        sink,
                        logged,
                    )
                    .await;
            }
        };
        let started_at = now;
        let started = Instant::now();
        let result = exchange.exchange(&*self.client, request).await;
        let elapsed = started.elapsed();
        let status = result.as_ref().ok().map(|r| r.status.as_u16());
        let success = status.is_some_and(|s| (200..300).contains(&s));
        let now = self.now();

        let mut note = None;
        let outcome = if success {
            if self.cache.needs_success_write(&cached, now) {
                let e = self
                    .store()
                    .record_health(&d.account, &d.endpoint_id, true, now)
                    .await?;
                self.cache.note_health(&e, now);
            }
            LeaseOutcome::Succeeded
        } else if status == Some(410) {
            let reason = "the endpoint answered 410 Gone";
            self.disable(&d.account, &d.endpoint_id, reason, now)
                .await?;
            note = Some(format!("{reason}; the webhook was disabled"));
            LeaseOutcome::Dead {
                error: reason.into(),
            }
        } else {
            let error = match &result {
                Ok(r) => format!("HTTP {}", r.status.as_u16()),
                Err(e) => e.to_string(),
            };
            let health = self
                .store()
                .record_health(&d.account, &d.endpoint_id, false, now)
                .await?;
            self.cache.note_health(&health, now);
            let failing_for = health.failing_since.map(|t| now - t);
            if failing_for.is_some_and(|f| f >= self.config.disable_after) {
                let reason = format!(
                    "no successful delivery for {} days while deliveries kept failing",
                    self.config.disable_after.num_days()
                );
                self.disable(&d.account, &d.endpoint_id, &reason, now)
                    .await?;
                note = Some(format!(
                    "the webhook was disabled: {reason}; re-enable it once the endpoint works"
                ));
                LeaseOutcome::Dead {
                    error: format!("{error}; webhook disabled: {reason}"),
                }
            } else {
                let mut next = self.config.retry.next_attempt(attempt, now);
                if let (Some(at), Ok(r)) = (next, &result)
                    && let Some(wait) = retry_after(&r.headers, now)
                {
                    let wait = wait.min(self.config.retry_after_max);
                    let honoured = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    next = Some(at.max(honoured));
                }
                match next {
                    Some(at) => LeaseOutcome::Retry {
                        next_attempt_at: at,
                        error,
                    },
                    None => LeaseOutcome::Dead {
                        error: format!(
                            "{error}; all {} attempts failed",
                            self.config.retry.attempts()
                        ),
                    },
                }
            }
        };
        let logged = self
            .log(
                &lease.delivery,
                attempt,
                started_at,
                &result,
                elapsed.as_millis() as u64,
                false,
                note,
                sink,
            )
            .await?;
        self.finish(lease, attempt, status, outcome, now, sink, logged)
            .await
    }

    async fn disable(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        self.cache.forget(endpoint);
        self.store()
            .disable_endpoint(account, endpoint, reason, now)
            .await?;
        self.store()
            .kill_pending(
                account,
                endpoint,
                &format!("webhook disabled: {reason}"),
                now,
            )
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        lease: &Arc<Lease>,
        attempt: u32,
        status: Option<u16>,
        outcome: LeaseOutcome,
        now: DateTime<Utc>,
        sink: Option<&dyn Sink>,
        logged: Option<DeliveryAttempt>,
    ) -> Result<AttemptReport, DeliveryError> {
        let report = AttemptReport {
            delivery_id: lease.delivery.id.clone(),
            attempt,
            status,
            success: outcome == LeaseOutcome::Succeeded,
            next_attempt_at: match &outcome {
                LeaseOutcome::Retry {
                    next_attempt_at, ..
                } => Some(*next_attempt_at),
                _ => None,
            },
            dead: matches!(outcome, LeaseOutcome::Dead { .. }),
        };
        match sink {
            Some(sink) => sink.done(logged, lease, outcome, now),
            None => {
                self.store().finish(lease, outcome, now).await?;
            }
        }
        Ok(report)
    }

    fn request_for(
        &self,
        e: &UnsealedEndpoint,
        target: Option<&Target>,
        message_id: &str,
        payload: &Bytes,
        now: DateTime<Utc>,
    ) -> Result<http::Request<Bytes>, BuildError> {
        let out = Outgoing {
            url: &e.endpoint.url,
            method: e.endpoint.method,
            headers: &e.headers,
            secrets: &e.secrets,
            message_id,
            timestamp: now.timestamp(),
            payload,
            user_agent: &self.user_agent,
            max_get_url: self.config.max_get_url,
        };
        build_request_to(&out, target)
    }

    #[allow(clippy::too_many_arguments)]
    async fn log(
        &self,
        d: &Delivery,
        attempt: u32,
        at: DateTime<Utc>,
        result: &Result<HttpResponse, TransportError>,
        duration_ms: u64,
        test: bool,
        note: Option<String>,
        sink: Option<&dyn Sink>,
    ) -> Result<Option<DeliveryAttempt>, DeliveryError> {
        let entry = DeliveryAttempt {
            account: d.account.clone(),
            endpoint_id: d.endpoint_id.clone(),
            delivery_id: (!test).then(|| d.id.clone()),
            message_id: d.message_id.clone(),
            event_type: d.event_type.clone(),
            attempt,
            at,
            status: result.as_ref().ok().map(|r| r.status.as_u16()),
            error: result.as_ref().err().map(|e| e.kind),
            error_message: match (result, note) {
                (Err(e), Some(n)) => Some(format!("{}; {n}", e.message)),
                (Err(e), None) => Some(e.message.clone()),
                (Ok(_), n) => n,
            },
            response_body: result
                .as_ref()
                .map(|r| excerpt(&r.body, self.config.log_body_limit))
                .unwrap_or_default(),
            duration_ms,
            success: result.as_ref().is_ok_and(|r| r.status.is_success()),
            test,
        };
        // With a sink the entry goes to it with the outcome (`finish`), in one hand-over.
        match sink {
            Some(_) => Ok(Some(entry)),
            None => {
                self.store().append_attempt(entry).await?;
                Ok(None)
            }
        }
    }

    /// The Test button on a saved webhook: sends the documentation's test payload
    /// (`call.completed`, the example data, this webhook's id, the current timestamp),
    /// signed like a real delivery. Logged; never retried.
    pub async fn test_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<TestReport, DeliveryError> {
        let endpoint = self.store().endpoint(account, id).await?;
        let unsealed = self.registry.unseal_endpoint(endpoint)?;
        self.send_test(account, unsealed).await
    }

    /// The Test button on a configuration that is not saved yet. The URL and headers go
    /// through the same rules as when saving.
    pub async fn test_config(
        &self,
        account: &AccountId,
        config: TestConfig,
    ) -> Result<TestReport, DeliveryError> {
        let url = check_url(&config.url, &self.registry.config().destinations)
            .map_err(|e| DeliveryError::Registry(e.into()))?;
        let secret = match config.signing_secret {
            Some(s) => s,
            None => SigningSecret::generate().map_err(|e| DeliveryError::Registry(e.into()))?,
        };
        let now = self.now();
        let endpoint = crate::store::Endpoint {
            id: WebhookId::generate().map_err(|e| DeliveryError::Registry(e.into()))?,
            account: account.clone(),
            kind: crate::store::EndpointKind::Outbound,
            url: url.to_string(),
            method: config.method,
            headers: Vec::new(),
            secrets: Vec::new(),
            managed_by: None,
            enabled: true,
            disabled_reason: None,
            last_success_at: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let headers = config
            .headers
            .iter()
            .filter_map(|h| {
                HeaderValue::from_str(h.value().expose()).ok().map(|mut v| {
                    v.set_sensitive(true);
                    (h.name().clone(), v)
                })
            })
            .collect();
        let unsealed = UnsealedEndpoint {
            endpoint,
            headers,
            secrets: vec![secret],
        };
        self.send_test(account, unsealed).await
    }

    async fn send_test(
        &self,
        account: &AccountId,
        e: UnsealedEndpoint,
    ) -> Result<TestReport, DeliveryError> {
        let now = self.now();
        let payload = test_button_payload(e.endpoint.id.as_str(), now);
        let payload = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
        let message_id = MessageId::generate().map_err(|e| DeliveryError::Registry(e.into()))?;
        let delivery = Delivery {
            id: DeliveryId::new("test"),
            account: account.clone(),
            endpoint_id: e.endpoint.id.clone(),
            message_id: message_id.clone(),
            event_type: CallCompleted::TYPE.into(),
            payload: payload.clone(),
            call_id: None,
            state: DeliveryState::Succeeded,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        let started = Instant::now();
        let result = match self.request_for(&e, None, message_id.as_str(), &payload, now) {
            Ok(req) => self.client.send(req).await,
            Err(err) => Err(TransportError::new(
                TransportErrorKind::Other,
                err.to_string(),
            )),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        self.log(&delivery, 1, now, &result, duration_ms, true, None, None)
            .await?;
        let status = result.as_ref().ok().map(|r| r.status.as_u16());
        Ok(TestReport {
            webhook_id: e.endpoint.id.clone(),
            message_id,
            reachable: result.is_ok(),
            status,
            success: status.is_some_and(|s| (200..300).contains(&s)),
            class: classify(status),
            hint: hint(&result),
            body_excerpt: result
                .as_ref()
                .map(|r| excerpt(&r.body, self.config.log_body_limit))
                .unwrap_or_default(),
            error: result.as_ref().err().map(ToString::to_string),
            duration_ms,
        })
    }

    /// Sends a delivery again (dead or delivered), with the same message id.
    pub async fn redeliver(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Delivery, DeliveryError> {
        Ok(self.store().redeliver(account, id, self.now()).await?)
    }

    /// Sends again every dead letter of the account (optionally of one webhook) created at
    /// or after `since`; returns how many.
    pub async fn redeliver_dead_since(
        &self,
        account: &AccountId,
        endpoint: Option<&WebhookId>,
        since: DateTime<Utc>,
    ) -> Result<usize, DeliveryError> {
        Ok(self
            .store()
            .redeliver_dead_since(account, endpoint, since, self.now())
            .await?)
    }

    /// A webhook's delivery log, newest first; `success` filters.
    pub async fn delivery_log(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        success: Option<bool>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, DeliveryError> {
        Ok(self
            .store()
            .attempts(account, endpoint, success, limit)
            .await?)
    }

    /// Dead letters of the account, newest first.
    pub async fn dead_letters(
        &self,
        account: &AccountId,
        endpoint: Option<&WebhookId>,
        limit: usize,
    ) -> Result<Vec<Delivery>, DeliveryError> {
        Ok(self
            .store()
            .deliveries(
                account,
                &DeliveryFilter {
                    endpoint_id: endpoint.cloned(),
                    state: Some(DeliveryState::Dead),
                    since: None,
                    limit,
                },
            )
            .await?)
    }
}

/// Where the worker collects an attempt's writes, to store them in batches
/// ([`QueueStore::finish_many`](crate::store::QueueStore::finish_many),
/// [`LogStore::append_attempts`](crate::store::LogStore::append_attempts)) instead of one
/// store call each.
pub(crate) trait Sink: Send + Sync {
    /// An attempt's log entry (if it has one) and its lease's outcome.
    fn done(
        &self,
        attempt: Option<DeliveryAttempt>,
        lease: &Arc<Lease>,
        outcome: LeaseOutcome,
        now: DateTime<Utc>,
    );
}

/// How an attempt's request goes out: [`Direct`]ly through the client (with the client's own
/// timeout), or, in the worker's slots, bounded by the engine's `request_timeout` on a timer
/// the slot keeps.
pub(crate) trait Exchange: Send {
    /// Sends `request` with `client`.
    fn exchange<'a>(
        &'a mut self,
        client: &'a dyn HttpClient,
        request: http::Request<Bytes>,
    ) -> impl std::future::Future<Output = Result<HttpResponse, TransportError>> + Send + 'a;
}

/// [`HttpClient::send`] as it is.
pub(crate) struct Direct;

impl Exchange for Direct {
    fn exchange<'a>(
        &'a mut self,
        client: &'a dyn HttpClient,
        request: http::Request<Bytes>,
    ) -> impl std::future::Future<Output = Result<HttpResponse, TransportError>> + Send + 'a {
        client.send(request)
    }
}

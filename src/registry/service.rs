//! [`Registry`]: the registry traits over any store, with sealing.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue};

use super::{
    CampaignRegistry, CreatedEndpoint, CustomHeader, EndpointUpdate, EndpointView, HeaderView,
    InboundView, NewEndpoint, RegistryConfig, RegistryError, WebhookRegistry,
};
use crate::campaign::{Campaign, CampaignKind, CampaignSettings, CampaignStatus, SettingsVersion};
use crate::clock::{Clock, SystemClock};
use crate::destination::check_url;
use crate::ids::{AccountId, CampaignId, WebhookId, new_slug};
use crate::model::HttpMethod;
use crate::secrets::{KeyRing, MASK, SealContext, SecretString};
use crate::signing::SigningSecret;
use crate::store::{
    Endpoint, EndpointKind, InboundWebhook, SealedHeader, SealedSecret, Store, StoreError,
};

/// The registry over a store `S`, sealing with a [`KeyRing`].
pub struct Registry<S: ?Sized> {
    store: Arc<S>,
    keys: RwLock<KeyRing>,
    config: RegistryConfig,
    clock: Arc<dyn Clock>,
}

impl<S: ?Sized> std::fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An endpoint with its custom headers and signing secrets unsealed: what the delivery path
/// needs, and only it.
pub struct UnsealedEndpoint {
    /// The endpoint record.
    pub endpoint: Endpoint,
    /// Custom headers, ready to send.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Signing secrets valid now, the current one first.
    pub secrets: Vec<SigningSecret>,
}

impl std::fmt::Debug for UnsealedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealedEndpoint")
            .field("endpoint", &self.endpoint.id)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

fn header_context(name: &str) -> String {
    format!("header:{name}")
}

fn secret_context(seq: u32) -> String {
    format!("signing-secret:{seq}")
}

/// Seals custom headers and a signing secret for endpoint `id`.
fn seal_headers(
    keys: &KeyRing,
    id: &WebhookId,
    headers: &[CustomHeader],
) -> Result<Vec<SealedHeader>, RegistryError> {
    headers
        .iter()
        .map(|h| {
            let ctx = header_context(h.name().as_str());
            Ok(SealedHeader {
                name: h.name().as_str().to_owned(),
                value: keys.seal(
                    h.value().expose().as_bytes(),
                    SealContext::new(id.as_str(), &ctx),
                )?,
            })
        })
        .collect()
}

fn seal_secret(
    keys: &KeyRing,
    id: &WebhookId,
    secret: &SigningSecret,
    seq: u32,
    now: DateTime<Utc>,
) -> Result<SealedSecret, RegistryError> {
    let ctx = secret_context(seq);
    Ok(SealedSecret {
        value: keys.seal(secret.as_bytes(), SealContext::new(id.as_str(), &ctx))?,
        seq,
        created_at: now,
        expires_at: None,
    })
}

fn active_secrets(e: &Endpoint, now: DateTime<Utc>) -> impl Iterator<Item = &SealedSecret> {
    e.secrets
        .iter()
        .filter(move |s| s.expires_at.is_none_or(|t| t > now))
}

impl<S: Store + ?Sized> Registry<S> {
    /// A registry over `store`, sealing with `keys`, on the system clock.
    pub fn new(store: Arc<S>, keys: KeyRing, config: RegistryConfig) -> Self {
        Registry {
            store,
            keys: RwLock::new(keys),
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn keys(&self) -> KeyRing {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the key ring (after adding a key or changing the primary). Values sealed
    /// under keys still in the ring keep working; call [`Registry::reseal_all`] before
    /// removing an old key.
    pub fn set_key_ring(&self, keys: KeyRing) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    }

    /// Re-seals every header value and signing secret of every account under the primary
    /// key; returns how many endpoints changed. Afterwards the old keys can be removed.
    pub async fn reseal_all(&self) -> Result<usize, RegistryError> {
        let keys = self.keys();
        let mut changed = 0;
        for mut e in self.store.all_endpoints().await? {
            let stale = e.headers.iter().any(|h| keys.needs_reseal(&h.value))
                || e.secrets.iter().any(|s| keys.needs_reseal(&s.value));
            if !stale {
                continue;
            }
            for h in &mut e.headers {
                let ctx = header_context(&h.name);
                h.value = keys.reseal(&h.value, SealContext::new(e.id.as_str(), &ctx))?;
            }
            for s in &mut e.secrets {
                let ctx = secret_context(s.seq);
                s.value = keys.reseal(&s.value, SealContext::new(e.id.as_str(), &ctx))?;
            }
            self.store.update_endpoint(&e).await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Unseals an endpoint's custom headers and currently valid signing secrets, for the
    /// delivery path. No other API returns a stored header value.
    pub fn unseal_endpoint(&self, endpoint: Endpoint) -> Result<UnsealedEndpoint, RegistryError> {
        let keys = self.keys();
        unseal_with(&keys, endpoint, self.clock.now())
    }

    fn view(&self, e: &Endpoint) -> EndpointView {
        EndpointView {
            id: e.id.clone(),
            kind: e.kind.clone(),
            url: e.url.clone(),
            method: e.method,
            headers: e
                .headers
                .iter()
                .map(|h| HeaderView {
                    name: h.name.clone(),
                    value: MASK,
                })
                .collect(),
            managed_by: e.managed_by.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            last_success_at: e.last_success_at,
            failing_since: e.failing_since,
            active_secrets: active_secrets(e, self.clock.now()).count(),
            created_at: e.created_at,
        }
    }

    async fn inbound_view(&self, w: InboundWebhook) -> Result<InboundView, RegistryError> {
        let response_webhook = match &w.response_endpoint {
            Some(id) => match self.store.endpoint(&w.account, id).await {
                Ok(e) => Some(self.view(&e)),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        Ok(InboundView {
            url: self.inbound_url(&w.slug),
            id: w.id,
            slug: w.slug,
            campaign_id: w.campaign_id,
            enabled: w.enabled,
            response_webhook,
            created_at: w.created_at,
        })
    }

    /// The full inbound URL of a slug.
    pub fn inbound_url(&self, slug: &str) -> String {
        let base = &self.config.base_url;
        if base.ends_with('/') {
            format!("{base}{slug}")
        } else {
            format!("{base}/{slug}")
        }
    }

    async fn inbound_campaign(
        &self,
        account: &AccountId,
        id: &CampaignId,
    ) -> Result<Campaign, RegistryError> {
        let c = self.store.campaign(account, id).await?;
        if c.kind != CampaignKind::Inbound {
            return Err(RegistryError::NotInboundCampaign(id.clone()));
        }
        Ok(c)
    }

    fn check_url(&self, url: &str) -> Result<String, RegistryError> {
        Ok(check_url(url, &self.config.destinations)?.to_string())
    }

    async fn new_endpoint(
        &self,
        account: &AccountId,
        kind: EndpointKind,
        config: NewEndpoint,
    ) -> Result<(Endpoint, SecretString), RegistryError> {
        let url = self.check_url(&config.url)?;
        let id = WebhookId::generate()?;
        let now = self.clock.now();
        let keys = self.keys();
        let secret = match config.signing_secret {
            Some(s) => s,
            None => SigningSecret::generate()?,
        };
        let shown = SecretString::new(secret.to_whsec().to_string());
        let endpoint = Endpoint {
            headers: seal_headers(&keys, &id, &config.headers)?,
            secrets: vec![seal_secret(&keys, &id, &secret, 1, now)?],
            id,
            account: account.clone(),
            kind,
            url,
            method: config.method,
            managed_by: config.managed_by,
            enabled: true,
            disabled_reason: None,
            last_success_at: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_endpoint(&endpoint).await?;
        Ok((endpoint, shown))
    }

    fn writable(e: &Endpoint) -> Result<(), RegistryError> {
        match &e.managed_by {
            Some(m) => Err(RegistryError::ReadOnly {
                id: e.id.clone(),
                managed_by: m.clone(),
            }),
            None => Ok(()),
        }
    }

    fn apply_update(&self, e: &mut Endpoint, update: EndpointUpdate) -> Result<(), RegistryError> {
        if let Some(url) = update.url {
            e.url = self.check_url(&url)?;
        }
        if let Some(m) = update.method {
            e.method = if matches!(e.kind, EndpointKind::Response { .. }) {
                HttpMethod::Post
            } else {
                m
            };
        }
        if let Some(h) = update.headers {
            e.headers = seal_headers(&self.keys(), &e.id, &h)?;
        }
        e.updated_at = self.clock.now();
        Ok(())
    }

    /// Updates a managed webhook on behalf of its integration (`manager` must match its
    /// `managed_by` label).
    pub async fn update_managed_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
        manager: &str,
        update: EndpointUpdate,
    ) -> Result<EndpointView, RegistryError> {
        let mut e = self.store.endpoint(account, id).await?;
        if e.managed_by.as_deref() != Some(manager) {
            return Err(RegistryError::NotFound {
                what: "managed webhook",
                id: id.to_string(),
            });
        }
        self.apply_update(&mut e, update)?;
        self.store.update_endpoint(&e).await?;
        Ok(self.view(&e))
    }
}

/// Unseals with a given key ring (for [`Registry::unseal_endpoint`]).
fn unseal_with(
    keys: &KeyRing,
    endpoint: Endpoint,
    now: DateTime<Utc>,
) -> Result<UnsealedEndpoint, RegistryError> {
    let mut headers = Vec::with_capacity(endpoint.headers.len());
    for h in &endpoint.headers {
        let ctx = header_context(&h.name);
        let value = keys.unseal_string(&h.value, SealContext::new(endpoint.id.as_str(), &ctx))?;
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            RegistryError::InvalidHeader {
                name: h.name.clone(),
                reason: "stored name is invalid".into(),
            }
        })?;
        let mut value =
            HeaderValue::from_str(value.expose()).map_err(|_| RegistryError::InvalidHeader {
                name: h.name.clone(),
                reason: "stored value is invalid".into(),
            })?;
        value.set_sensitive(true);
        headers.push((name, value));
    }
    let mut secrets = Vec::new();
    for s in active_secrets(&endpoint, now) {
        let ctx = secret_context(s.seq);
        let bytes = keys.unseal(&s.value, SealContext::new(endpoint.id.as_str(), &ctx))?;
        secrets.push(SigningSecret::from_bytes(bytes.expose())?);
    }
    Ok(UnsealedEndpoint {
        endpoint,
        headers,
        secrets,
    })
}

#[async_trait]
impl<S: Store + ?Sized> CampaignRegistry for Registry<S> {
    async fn create_campaign(
        &self,
        account: &AccountId,
        name: &str,
        kind: CampaignKind,
        settings: CampaignSettings,
    ) -> Result<Campaign, RegistryError> {
        let c = Campaign::new(account.clone(), name, kind, settings, self.clock.now())?;
        self.store.insert_campaign(&c).await?;
        Ok(c)
    }

    async fn campaign(
        &self,
        account: &AccountId,
        id: &CampaignId,
    ) -> Result<Campaign, RegistryError> {
        Ok(self.store.campaign(account, id).await?)
    }

    async fn campaigns(&self, account: &AccountId) -> Result<Vec<Campaign>, RegistryError> {
        Ok(self.store.campaigns(account).await?)
    }

    async fn edit_campaign(
        &self,
        account: &AccountId,
        id: &CampaignId,
        settings: CampaignSettings,
    ) -> Result<SettingsVersion, RegistryError> {
        let mut c = self.store.campaign(account, id).await?;
        let v = c.edit_settings(settings, self.clock.now())?;
        self.store.update_campaign(&c).await?;
        Ok(v)
    }

    async fn set_campaign_status(
        &self,
        account: &AccountId,
        id: &CampaignId,
        status: CampaignStatus,
    ) -> Result<Campaign, RegistryError> {
        let mut c = self.store.campaign(account, id).await?;
        c.set_status(status, self.clock.now())?;
        self.store.update_campaign(&c).await?;
        Ok(c)
    }

    async fn settings_version(
        &self,
        account: &AccountId,
        id: &CampaignId,
        version: u32,
    ) -> Result<SettingsVersion, RegistryError> {
        Ok(self.store.settings_version(account, id, version).await?)
    }
}

#[async_trait]
impl<S: Store + ?Sized> WebhookRegistry for Registry<S> {
    async fn create_inbound(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
    ) -> Result<InboundView, RegistryError> {
        if let Some(c) = campaign {
            self.inbound_campaign(account, c).await?;
        }
        let now = self.clock.now();
        let w = InboundWebhook {
            id: WebhookId::generate()?,
            account: account.clone(),
            slug: new_slug()?,
            campaign_id: campaign.cloned(),
            enabled: true,
            response_endpoint: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_inbound(&w).await?;
        self.inbound_view(w).await
    }

    async fn bind_campaign(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
        campaign: &CampaignId,
    ) -> Result<InboundView, RegistryError> {
        let mut w = self.store.inbound(account, inbound).await?;
        self.inbound_campaign(account, campaign).await?;
        w.campaign_id = Some(campaign.clone());
        w.updated_at = self.clock.now();
        self.store.update_inbound(&w).await?;
        self.inbound_view(w).await
    }

    async fn create_campaign_for(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
        name: &str,
        settings: CampaignSettings,
    ) -> Result<Campaign, RegistryError> {
        self.store.inbound(account, inbound).await?;
        let c = self
            .create_campaign(account, name, CampaignKind::Inbound, settings)
            .await?;
        self.bind_campaign(account, inbound, &c.id).await?;
        Ok(c)
    }

    async fn inbound(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<InboundView, RegistryError> {
        let w = self.store.inbound(account, id).await?;
        self.inbound_view(w).await
    }

    async fn inbound_webhooks(
        &self,
        account: &AccountId,
    ) -> Result<Vec<InboundView>, RegistryError> {
        let mut out = Vec::new();
        for w in self.store.inbound_webhooks(account).await? {
            out.push(self.inbound_view(w).await?);
        }
        Ok(out)
    }

    async fn resolve_slug(&self, slug: &str) -> Result<Option<InboundWebhook>, RegistryError> {
        Ok(self
            .store
            .inbound_by_slug(slug)
            .await?
            .filter(|w| w.enabled))
    }

    async fn rotate_slug(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<InboundView, RegistryError> {
        let mut w = self.store.inbound(account, id).await?;
        w.slug = new_slug()?;
        w.updated_at = self.clock.now();
        self.store.update_inbound(&w).await?;
        self.inbound_view(w).await
    }

    async fn set_inbound_enabled(
        &self,
        account: &AccountId,
        id: &WebhookId,
        enabled: bool,
    ) -> Result<InboundView, RegistryError> {
        let mut w = self.store.inbound(account, id).await?;
        w.enabled = enabled;
        w.updated_at = self.clock.now();
        self.store.update_inbound(&w).await?;
        self.inbound_view(w).await
    }

    async fn delete_inbound(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<(), RegistryError> {
        Ok(self.store.delete_inbound(account, id).await?)
    }

    async fn set_response_webhook(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
        config: NewEndpoint,
    ) -> Result<(EndpointView, Option<SecretString>), RegistryError> {
        let mut w = self.store.inbound(account, inbound).await?;
        if let Some(existing) = &w.response_endpoint {
            match self.store.endpoint(account, existing).await {
                Ok(mut e) => {
                    self.apply_update(
                        &mut e,
                        EndpointUpdate {
                            url: Some(config.url),
                            method: None,
                            headers: Some(config.headers),
                        },
                    )?;
                    self.store.update_endpoint(&e).await?;
                    return Ok((self.view(&e), None));
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let config = NewEndpoint {
            method: HttpMethod::Post,
            ..config
        };
        let (e, secret) = self
            .new_endpoint(
                account,
                EndpointKind::Response {
                    inbound: inbound.clone(),
                },
                config,
            )
            .await?;
        w.response_endpoint = Some(e.id.clone());
        w.updated_at = self.clock.now();
        if let Err(err) = self.store.update_inbound(&w).await {
            // Do not leave an orphan endpoint behind.
            let _ = self.store.delete_endpoint(account, &e.id).await;
            return Err(err.into());
        }
        Ok((self.view(&e), Some(secret)))
    }

    async fn remove_response_webhook(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
    ) -> Result<(), RegistryError> {
        let mut w = self.store.inbound(account, inbound).await?;
        if let Some(id) = w.response_endpoint.take() {
            w.updated_at = self.clock.now();
            self.store.update_inbound(&w).await?;
            match self.store.delete_endpoint(account, &id).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn create_outbound(
        &self,
        account: &AccountId,
        config: NewEndpoint,
    ) -> Result<CreatedEndpoint, RegistryError> {
        let (e, signing_secret) = self
            .new_endpoint(account, EndpointKind::Outbound, config)
            .await?;
        Ok(CreatedEndpoint {
            webhook: self.view(&e),
            signing_secret,
        })
    }

    async fn update_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
        update: EndpointUpdate,
    ) -> Result<EndpointView, RegistryError> {
        let mut e = self.store.endpoint(account, id).await?;
        Self::writable(&e)?;
        self.apply_update(&mut e, update)?;
        self.store.update_endpoint(&e).await?;
        Ok(self.view(&e))
    }

    async fn set_endpoint_enabled(
        &self,
        account: &AccountId,
        id: &WebhookId,
        enabled: bool,
    ) -> Result<EndpointView, RegistryError> {
        let mut e = self.store.endpoint(account, id).await?;
        Self::writable(&e)?;
        e.enabled = enabled;
        if enabled {
            e.disabled_reason = None;
            e.failing_since = None;
        } else {
            e.disabled_reason = Some("disabled by the user".into());
        }
        e.updated_at = self.clock.now();
        self.store.update_endpoint(&e).await?;
        Ok(self.view(&e))
    }

    async fn delete_outbound(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<(), RegistryError> {
        let e = self.store.endpoint(account, id).await?;
        Self::writable(&e)?;
        if let EndpointKind::Response { inbound } = &e.kind {
            return self.remove_response_webhook(account, inbound).await;
        }
        Ok(self.store.delete_endpoint(account, id).await?)
    }

    async fn endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<EndpointView, RegistryError> {
        Ok(self.view(&self.store.endpoint(account, id).await?))
    }

    async fn endpoints(&self, account: &AccountId) -> Result<Vec<EndpointView>, RegistryError> {
        Ok(self
            .store
            .endpoints(account)
            .await?
            .iter()
            .map(|e| self.view(e))
            .collect())
    }

    async fn rotate_signing_secret(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<SecretString, RegistryError> {
        let mut e = self.store.endpoint(account, id).await?;
        Self::writable(&e)?;
        let now = self.clock.now();
        let overlap_end = now + self.config.secret_overlap;
        e.secrets.retain(|s| s.expires_at.is_none_or(|t| t > now));
        for s in &mut e.secrets {
            if s.expires_at.is_none_or(|t| t > overlap_end) {
                s.expires_at = Some(overlap_end);
            }
        }
        let seq = e.secrets.iter().map(|s| s.seq).max().unwrap_or(0) + 1;
        let secret = SigningSecret::generate()?;
        let sealed = seal_secret(&self.keys(), &e.id, &secret, seq, now)?;
        e.secrets.insert(0, sealed);
        e.updated_at = now;
        self.store.update_endpoint(&e).await?;
        Ok(SecretString::new(secret.to_whsec().to_string()))
    }
}

//! The management side: campaigns, inbound webhooks (secret slugs bound to campaigns),
//! response webhooks, outbound webhooks, custom headers and signing secrets.
//!
//! [`CampaignRegistry`] and [`WebhookRegistry`] are the operations; [`Registry`] implements
//! both over any [`Store`](crate::store::Store). Every operation is scoped by account: an id
//! of another account answers [`RegistryError::NotFound`]. Views mask header values and
//! never carry a signing secret; a new signing secret is shown once, in [`CreatedEndpoint`].
//! Only the delivery path unseals stored values ([`Registry::unseal_endpoint`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), atllas_webhooks::registry::RegistryError> {
//! use std::sync::Arc;
//! use atllas_webhooks::ids::AccountId;
//! use atllas_webhooks::registry::{headers, NewEndpoint, Registry, RegistryConfig, WebhookRegistry};
//! use atllas_webhooks::secrets::KeyRing;
//! use atllas_webhooks::store::memory::MemoryStore;
//!
//! let registry = Registry::new(Arc::new(MemoryStore::new()), KeyRing::generate()?, RegistryConfig::default());
//! let account = AccountId::new("acct_1");
//! let created = registry
//!     .create_outbound(&account, NewEndpoint::post("https://crm.example.com/hooks")
//!         .header(headers::bearer("token123")?))
//!     .await?;
//! assert!(created.signing_secret.expose().starts_with("whsec_"));
//! assert_eq!(created.webhook.headers[0].value, atllas_webhooks::secrets::MASK);
//! # Ok(())
//! # }
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::campaign::{
    Campaign, CampaignError, CampaignKind, CampaignSettings, CampaignStatus, SettingsVersion,
};
use crate::destination::{DestinationError, DestinationPolicy};
use crate::ids::{AccountId, CampaignId, RngError, WebhookId};
use crate::model::HttpMethod;
use crate::secrets::{SecretString, SecretsError};
use crate::signing::{SigningError, SigningSecret};
use crate::store::{EndpointKind, InboundWebhook, StoreError};

pub mod headers;
mod service;

pub use headers::CustomHeader;
pub use service::{Registry, UnsealedEndpoint};

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No such record in this account.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A campaign rule (locked outbound campaign, invalid transition or setting).
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    /// An inbound webhook can only be bound to an inbound campaign.
    #[error("campaign {0} is an outbound campaign; inbound webhooks bind to inbound campaigns")]
    NotInboundCampaign(CampaignId),
    /// A destination URL broke a rule.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// A custom header name or value is invalid.
    #[error("invalid custom header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name (cut to 64 characters).
        name: String,
        /// Why.
        reason: String,
    },
    /// A custom header may not set this name.
    #[error("the header {0:?} is reserved and cannot be set as a custom header")]
    ReservedHeader(String),
    /// The webhook is managed by an integration and read-only through this API.
    #[error("webhook {id} is managed by {managed_by} and is read-only here")]
    ReadOnly {
        /// The webhook.
        id: WebhookId,
        /// The managing integration.
        managed_by: String,
    },
    /// Sealing or unsealing failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// A signing secret is invalid.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The random generator failed.
    #[error(transparent)]
    Rng(#[from] RngError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } => RegistryError::NotFound { what, id },
            other => RegistryError::Store(other),
        }
    }
}

/// Registry settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The inbound webhook URL is this plus the slug (default `https://wh.atll.as/`).
    pub base_url: String,
    /// Which destination URLs are accepted.
    pub destinations: DestinationPolicy,
    /// How long a rotated-out signing secret keeps signing (default 24 h).
    pub secret_overlap: chrono::Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            base_url: "https://wh.atll.as/".into(),
            destinations: DestinationPolicy::default(),
            secret_overlap: chrono::Duration::hours(24),
        }
    }
}

/// A new outbound or response webhook.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Destination URL.
    pub url: String,
    /// POST or GET (response webhooks always POST).
    pub method: HttpMethod,
    /// Custom headers.
    pub headers: Vec<CustomHeader>,
    /// A label such as "Zapier" for webhooks an integration manages.
    pub managed_by: Option<String>,
    /// Use this signing secret instead of generating one.
    pub signing_secret: Option<SigningSecret>,
}

impl NewEndpoint {
    /// A POST webhook to `url`.
    pub fn post(url: impl Into<String>) -> Self {
        NewEndpoint {
            url: url.into(),
            method: HttpMethod::Post,
            headers: Vec::new(),
            managed_by: None,
            signing_secret: None,
        }
    }

    /// A GET webhook to `url`.
    pub fn get(url: impl Into<String>) -> Self {
        NewEndpoint {
            method: HttpMethod::Get,
            ..Self::post(url)
        }
    }

    /// Adds a custom header.
    pub fn header(mut self, header: CustomHeader) -> Self {
        self.headers.push(header);
        self
    }

    /// Adds custom headers.
    pub fn headers(mut self, headers: impl IntoIterator<Item = CustomHeader>) -> Self {
        self.headers.extend(headers);
        self
    }

    /// Marks it as managed by an integration.
    pub fn managed_by(mut self, label: impl Into<String>) -> Self {
        self.managed_by = Some(label.into());
        self
    }

    /// Uses a given signing secret.
    pub fn signing_secret(mut self, secret: SigningSecret) -> Self {
        self.signing_secret = Some(secret);
        self
    }
}

/// Changes to an outbound or response webhook; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointUpdate {
    /// A new URL.
    pub url: Option<String>,
    /// A new method.
    pub method: Option<HttpMethod>,
    /// Replaces all custom headers.
    pub headers: Option<Vec<CustomHeader>>,
}

/// A custom header as views show it: the name, and a mask instead of the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderView {
    /// The header name.
    pub name: String,
    /// Always [`MASK`](crate::secrets::MASK).
    pub value: &'static str,
}

/// What the registry shows of an outbound or response webhook: no header value, no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    /// The id.
    pub id: WebhookId,
    /// Outbound, or the response webhook of an inbound one.
    pub kind: EndpointKind,
    /// Destination URL.
    pub url: String,
    /// POST or GET.
    pub method: HttpMethod,
    /// Header names with masked values.
    pub headers: Vec<HeaderView>,
    /// The managing integration, if any ("Managed by Zapier").
    pub managed_by: Option<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// Last successful delivery.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Failing since (no success since then).
    pub failing_since: Option<DateTime<Utc>>,
    /// How many signing secrets are valid now (2 during a rotation).
    pub active_secrets: usize,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A webhook just created, with its signing secret: the only time it is shown.
#[derive(Debug, Clone)]
pub struct CreatedEndpoint {
    /// The webhook.
    pub webhook: EndpointView,
    /// `whsec_…`; store it now, it is never shown again.
    pub signing_secret: SecretString,
}

/// What the registry shows of an inbound webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundView {
    /// The id.
    pub id: WebhookId,
    /// The secret slug.
    pub slug: String,
    /// The full URL to post to: base URL plus slug. Treat it like an API key.
    pub url: String,
    /// The bound campaign.
    pub campaign_id: Option<CampaignId>,
    /// Whether requests are accepted.
    pub enabled: bool,
    /// The response webhook, if configured.
    pub response_webhook: Option<EndpointView>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Campaign operations.
#[async_trait]
pub trait CampaignRegistry: Send + Sync {
    /// Creates a campaign in `draft` with settings version 1.
    async fn create_campaign(
        &self,
        account: &AccountId,
        name: &str,
        kind: CampaignKind,
        settings: CampaignSettings,
    ) -> Result<Campaign, RegistryError>;
    /// A campaign.
    async fn campaign(
        &self,
        account: &AccountId,
        id: &CampaignId,
    ) -> Result<Campaign, RegistryError>;
    /// The account's campaigns.
    async fn campaigns(&self, account: &AccountId) -> Result<Vec<Campaign>, RegistryError>;
    /// Saves new settings as a new version (refused for a locked outbound campaign).
    async fn edit_campaign(
        &self,
        account: &AccountId,
        id: &CampaignId,
        settings: CampaignSettings,
    ) -> Result<SettingsVersion, RegistryError>;
    /// Changes a campaign's status.
    async fn set_campaign_status(
        &self,
        account: &AccountId,
        id: &CampaignId,
        status: CampaignStatus,
    ) -> Result<Campaign, RegistryError>;
    /// One settings version (what a call ran with).
    async fn settings_version(
        &self,
        account: &AccountId,
        id: &CampaignId,
        version: u32,
    ) -> Result<SettingsVersion, RegistryError>;
}

/// Webhook operations.
#[async_trait]
pub trait WebhookRegistry: Send + Sync {
    /// Creates an inbound webhook with a fresh slug, bound to `campaign` if given.
    async fn create_inbound(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
    ) -> Result<InboundView, RegistryError>;
    /// Binds an inbound webhook to an inbound campaign.
    async fn bind_campaign(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
        campaign: &CampaignId,
    ) -> Result<InboundView, RegistryError>;
    /// The seed's "Create Campaign" step: creates an inbound campaign and binds it.
    async fn create_campaign_for(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
        name: &str,
        settings: CampaignSettings,
    ) -> Result<Campaign, RegistryError>;
    /// An inbound webhook.
    async fn inbound(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<InboundView, RegistryError>;
    /// The account's inbound webhooks.
    async fn inbound_webhooks(
        &self,
        account: &AccountId,
    ) -> Result<Vec<InboundView>, RegistryError>;
    /// Finds the enabled inbound webhook of a slug, in any account (the inbound path).
    async fn resolve_slug(&self, slug: &str) -> Result<Option<InboundWebhook>, RegistryError>;
    /// Gives an inbound webhook a new slug; the old one stops working at once.
    async fn rotate_slug(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<InboundView, RegistryError>;
    /// Enables or disables an inbound webhook (disabled slugs answer 404).
    async fn set_inbound_enabled(
        &self,
        account: &AccountId,
        id: &WebhookId,
        enabled: bool,
    ) -> Result<InboundView, RegistryError>;
    /// Deletes an inbound webhook and its response webhook.
    async fn delete_inbound(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<(), RegistryError>;

    /// Sets the response webhook of an inbound webhook. When one exists its URL and headers
    /// are replaced and its signing secret kept (the returned secret is then `None`).
    async fn set_response_webhook(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
        config: NewEndpoint,
    ) -> Result<(EndpointView, Option<SecretString>), RegistryError>;
    /// Removes the response webhook of an inbound webhook.
    async fn remove_response_webhook(
        &self,
        account: &AccountId,
        inbound: &WebhookId,
    ) -> Result<(), RegistryError>;

    /// Creates an outbound webhook.
    async fn create_outbound(
        &self,
        account: &AccountId,
        config: NewEndpoint,
    ) -> Result<CreatedEndpoint, RegistryError>;
    /// Updates a webhook (refused for managed ones).
    async fn update_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
        update: EndpointUpdate,
    ) -> Result<EndpointView, RegistryError>;
    /// Enables (clearing the failure streak) or disables a webhook (refused for managed
    /// ones).
    async fn set_endpoint_enabled(
        &self,
        account: &AccountId,
        id: &WebhookId,
        enabled: bool,
    ) -> Result<EndpointView, RegistryError>;
    /// Deletes an outbound webhook (refused for managed ones); its pending deliveries
    /// become dead letters.
    async fn delete_outbound(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<(), RegistryError>;
    /// An outbound or response webhook.
    async fn endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<EndpointView, RegistryError>;
    /// The account's outbound and response webhooks.
    async fn endpoints(&self, account: &AccountId) -> Result<Vec<EndpointView>, RegistryError>;
    /// Rotates the signing secret: the new one is returned (shown once); the previous one
    /// keeps signing for the configured overlap.
    async fn rotate_signing_secret(
        &self,
        account: &AccountId,
        id: &WebhookId,
    ) -> Result<SecretString, RegistryError>;
}

//! The crate-wide error: every module's error, wrapped.

/// Any error of this crate. Each module also has its own error type; this one wraps them
/// all for callers that do not care which module failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Parsing an event.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// Validating a `calls.execute` body.
    #[error(transparent)]
    Execute(#[from] crate::validate::ExecuteError),
    /// Parsing a phone number.
    #[error(transparent)]
    Phone(#[from] crate::validate::PhoneError),
    /// Sealing or unsealing a secret.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// A destination URL or address broke a rule.
    #[error(transparent)]
    Destination(#[from] crate::destination::DestinationError),
    /// A campaign rule.
    #[error(transparent)]
    Campaign(#[from] crate::campaign::CampaignError),
    /// A registry operation.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A storage backend.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The call lifecycle.
    #[error(transparent)]
    Calls(#[from] crate::calls::CallsError),
    /// The delivery engine.
    #[error(transparent)]
    Delivery(#[from] crate::delivery::DeliveryError),
    /// Receiving an event.
    #[error(transparent)]
    Receiver(#[from] crate::receiver::ReceiverError),
    /// Signing or verifying.
    #[error(transparent)]
    Signing(#[from] crate::signing::SigningError),
}

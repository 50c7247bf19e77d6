//! Campaigns own every call setting. Inbound campaigns (bound to inbound webhooks) can be
//! edited at any time; each edit makes a new settings version, and a call keeps the version
//! it ran with. Outbound campaigns lock once they start dialing (`executing`).
//!
//! ```
//! use atllas_webhooks::campaign::{Campaign, CampaignKind, CampaignSettings, CampaignStatus};
//! use atllas_webhooks::ids::AccountId;
//! use chrono::Utc;
//!
//! let settings = CampaignSettings { prompt: Some("Qualify the lead.".into()), ..Default::default() };
//! let mut c = Campaign::new(AccountId::new("acct_1"), "Q4 Outreach", CampaignKind::Outbound, settings.clone(), Utc::now()).unwrap();
//! c.set_status(CampaignStatus::Active, Utc::now()).unwrap();
//! c.set_status(CampaignStatus::Executing, Utc::now()).unwrap();
//! assert!(c.edit_settings(settings, Utc::now()).is_err()); // locked while dialing
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, CampaignId, RngError};
use crate::model::CampaignRef;

/// Errors of campaign rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CampaignError {
    /// An outbound campaign cannot be edited once it has started dialing.
    #[error(
        "campaign {id} is an outbound campaign that is {status}: its settings are locked once it starts dialing"
    )]
    Locked {
        /// The campaign.
        id: CampaignId,
        /// Its status.
        status: CampaignStatus,
    },
    /// A status change that the lifecycle does not allow.
    #[error("campaign {id} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The campaign.
        id: CampaignId,
        /// Current status.
        from: CampaignStatus,
        /// Requested status.
        to: CampaignStatus,
    },
    /// Inbound campaigns are triggered per request and never run as a dialing batch.
    #[error("campaign {0} is an inbound campaign: it cannot be {1}")]
    NotForInbound(CampaignId, CampaignStatus),
    /// A setting is invalid.
    #[error("invalid campaign setting {field}: {reason}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Generating an id failed.
    #[error(transparent)]
    Rng(#[from] RngError),
}

/// Inbound (triggered by an inbound webhook) or outbound (dials a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignKind {
    /// Bound to inbound webhooks; each request places one call.
    Inbound,
    /// Dials its own list; locks once executing.
    Outbound,
}

/// A campaign's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    /// Being set up; places no calls.
    Draft,
    /// Places calls.
    Active,
    /// Temporarily places no calls.
    Paused,
    /// An outbound campaign that is dialing; its settings are locked.
    Executing,
    /// Finished; places no calls and cannot be edited (outbound) or restarted.
    Completed,
}

impl CampaignStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Executing => "executing",
            CampaignStatus::Completed => "completed",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => CampaignStatus::Draft,
            "active" => CampaignStatus::Active,
            "paused" => CampaignStatus::Paused,
            "executing" => CampaignStatus::Executing,
            "completed" => CampaignStatus::Completed,
            _ => return None,
        })
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A follow-up after a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    /// `email` or `sms`.
    pub channel: String,
    /// Minutes after the call.
    pub delay_minutes: u32,
    /// The message template.
    pub template: String,
}

/// Where to forward a call, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallForwarding {
    /// E.164 number to forward to.
    pub phone_number: String,
    /// When to forward (e.g. "caller asks for a human").
    pub condition: String,
}

/// Every call setting a campaign owns (the seed lists voice, call script, voicemail message,
/// follow-ups, call forwarding, keypad navigation, language and background ambiance).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CampaignSettings {
    /// The AI prompt or call script. A call is placed only when it is set and non-blank.
    pub prompt: Option<String>,
    /// The voice.
    pub voice: Option<String>,
    /// The message left on voicemail.
    pub voicemail_message: Option<String>,
    /// Follow-ups after the call.
    pub follow_ups: Vec<FollowUp>,
    /// Call forwarding.
    pub call_forwarding: Option<CallForwarding>,
    /// Keypad (IVR) navigation digits to send, e.g. `"1,2"`.
    pub keypad_navigation: Option<String>,
    /// Language (BCP 47, e.g. `en-US`).
    pub language: Option<String>,
    /// Background ambiance (e.g. `office`).
    pub background_ambiance: Option<String>,
}

impl CampaignSettings {
    /// Whether a prompt or script is configured.
    pub fn has_prompt(&self) -> bool {
        self.prompt.as_deref().is_some_and(|p| !p.trim().is_empty())
    }

    /// Checks the settings that have a format.
    pub fn validate(&self) -> Result<(), CampaignError> {
        if let Some(f) = &self.call_forwarding {
            crate::validate::PhoneNumber::parse(&f.phone_number).map_err(|e| {
                CampaignError::InvalidSetting {
                    field: "callForwarding.phoneNumber",
                    reason: e.to_string(),
                }
            })?;
        }
        if let Some(k) = &self.keypad_navigation
            && let Some(bad) = k
                .chars()
                .find(|c| !(c.is_ascii_digit() || matches!(c, '*' | '#' | ',' | 'w')))
        {
            return Err(CampaignError::InvalidSetting {
                field: "keypadNavigation",
                reason: format!(
                    "{bad:?} is not a keypad digit, '*', '#', ',' (pause) or 'w' (wait)"
                ),
            });
        }
        for f in &self.follow_ups {
            if !matches!(f.channel.as_str(), "email" | "sms") {
                return Err(CampaignError::InvalidSetting {
                    field: "followUps.channel",
                    reason: format!("{:?} is not \"email\" or \"sms\"", f.channel),
                });
            }
        }
        Ok(())
    }
}

/// One saved version of a campaign's settings. Calls reference `(campaign, version)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsVersion {
    /// The campaign.
    pub campaign_id: CampaignId,
    /// 1 for the settings the campaign was created with, then one more per edit.
    pub version: u32,
    /// The settings.
    pub settings: CampaignSettings,
    /// When this version was saved.
    pub created_at: DateTime<Utc>,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    /// The id.
    pub id: CampaignId,
    /// The owning account.
    pub account: AccountId,
    /// The name shown in events (`campaign.name`).
    pub name: String,
    /// Inbound or outbound.
    pub kind: CampaignKind,
    /// Lifecycle status.
    pub status: CampaignStatus,
    /// The current settings version.
    pub settings_version: u32,
    /// The current settings.
    pub settings: CampaignSettings,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Campaign {
    /// A new campaign in `draft`, with settings version 1.
    pub fn new(
        account: AccountId,
        name: impl Into<String>,
        kind: CampaignKind,
        settings: CampaignSettings,
        now: DateTime<Utc>,
    ) -> Result<Self, CampaignError> {
        settings.validate()?;
        Ok(Campaign {
            id: CampaignId::generate()?,
            account,
            name: name.into(),
            kind,
            status: CampaignStatus::Draft,
            settings_version: 1,
            settings,
            created_at: now,
            updated_at: now,
        })
    }

    /// The current settings as a version record.
    pub fn current_version(&self) -> SettingsVersion {
        SettingsVersion {
            campaign_id: self.id.clone(),
            version: self.settings_version,
            settings: self.settings.clone(),
            created_at: self.updated_at,
        }
    }

    /// Whether the settings are locked: an outbound campaign that is executing or
    /// completed.
    pub fn is_locked(&self) -> bool {
        self.kind == CampaignKind::Outbound
            && matches!(
                self.status,
                CampaignStatus::Executing | CampaignStatus::Completed
            )
    }

    /// Replaces the settings, making a new version. Fails with [`CampaignError::Locked`]
    /// for a locked outbound campaign. Calls already placed keep their version.
    pub fn edit_settings(
        &mut self,
        settings: CampaignSettings,
        now: DateTime<Utc>,
    ) -> Result<SettingsVersion, CampaignError> {
        if self.is_locked() {
            return Err(CampaignError::Locked {
                id: self.id.clone(),
                status: self.status,
            });
        }
        settings.validate()?;
        self.settings = settings;
        self.settings_version += 1;
        self.updated_at = now;
        Ok(self.current_version())
    }

    /// Changes the status. Allowed: draft → active; active ⇄ paused; any but completed →
    /// completed; for outbound campaigns, active → executing and executing ⇄ paused
    /// (a paused outbound campaign that has dialed stays locked only while executing).
    /// Inbound campaigns never execute.
    pub fn set_status(
        &mut self,
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<(), CampaignError> {
        use CampaignStatus::*;
        let from = self.status;
        if from == to {
            return Ok(());
        }
        if to == Executing && self.kind == CampaignKind::Inbound {
            return Err(CampaignError::NotForInbound(self.id.clone(), to));
        }
        let ok = matches!(
            (from, to),
            (Draft, Active)
                | (Active, Paused)
                | (Paused, Active)
                | (Active, Executing)
                | (Executing, Paused)
                | (Paused, Executing)
                | (Draft | Active | Paused | Executing, Completed)
        );
        if !ok {
            return Err(CampaignError::InvalidTransition {
                id: self.id.clone(),
                from,
                to,
            });
        }
        self.status = to;
        self.updated_at = now;
        Ok(())
    }

    /// Why this campaign cannot place a call now, or `None` if it can: it must be active
    /// and have a prompt.
    pub fn refusal(&self) -> Option<String> {
        if self.status != CampaignStatus::Active {
            return Some(format!(
                "campaign {} is {}, not active",
                self.id, self.status
            ));
        }
        if !self.settings.has_prompt() {
            return Some(format!("campaign {} has no prompt configured", self.id));
        }
        None
    }

    /// `{"id", "name"}` for events.
    pub fn to_ref(&self) -> CampaignRef {
        CampaignRef::new(self.id.as_str(), self.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(prompt: &str) -> CampaignSettings {
        CampaignSettings {
            prompt: Some(prompt.into()),
            ..Default::default()
        }
    }

    fn campaign(kind: CampaignKind) -> Campaign {
        Campaign::new(AccountId::new("a"), "C", kind, settings("p"), Utc::now()).unwrap()
    }

    #[test]
    fn inbound_edits_any_time_and_versions() {
        let mut c = campaign(CampaignKind::Inbound);
        for status in [CampaignStatus::Active, CampaignStatus::Paused] {
            c.set_status(status, Utc::now()).unwrap();
            let before = c.settings_version;
            let v = c.edit_settings(settings("new"), Utc::now()).unwrap();
            assert_eq!(v.version, before + 1);
        }
        c.set_status(CampaignStatus::Completed, Utc::now()).unwrap();
        assert!(c.edit_settings(settings("after"), Utc::now()).is_ok());
        assert!(matches!(
            c.set_status(CampaignStatus::Executing, Utc::now()),
            Err(CampaignError::InvalidTransition { .. } | CampaignError::NotForInbound(..))
        ));
    }

    #[test]
    fn outbound_locks_once_dialing() {
        let mut c = campaign(CampaignKind::Outbound);
        c.edit_settings(settings("draft edit"), Utc::now()).unwrap();
        c.set_status(CampaignStatus::Active, Utc::now()).unwrap();
        c.set_status(CampaignStatus::Executing, Utc::now()).unwrap();
        let err = c.edit_settings(settings("x"), Utc::now()).unwrap_err();
        assert!(matches!(err, CampaignError::Locked { .. }));
        assert!(err.to_string().contains("locked"));
        c.set_status(CampaignStatus::Completed, Utc::now()).unwrap();
        assert!(c.edit_settings(settings("x"), Utc::now()).is_err());
        assert!(c.set_status(CampaignStatus::Active, Utc::now()).is_err());
    }

    #[test]
    fn refusal_reasons() {
        let mut c = campaign(CampaignKind::Inbound);
        assert!(c.refusal().unwrap().contains("draft"));
        c.set_status(CampaignStatus::Active, Utc::now()).unwrap();
        assert_eq!(c.refusal(), None);
        c.edit_settings(settings("  "), Utc::now()).unwrap();
        assert!(c.refusal().unwrap().contains("no prompt"));
    }

    #[test]
    fn settings_are_validated() {
        let bad = CampaignSettings {
            keypad_navigation: Some("1x".into()),
            ..settings("p")
        };
        assert!(matches!(
            bad.validate(),
            Err(CampaignError::InvalidSetting {
                field: "keypadNavigation",
                ..
            })
        ));
        let bad = CampaignSettings {
            call_forwarding: Some(CallForwarding {
                phone_number: "555".into(),
                condition: "x".into(),
            }),
            ..settings("p")
        };
        assert!(bad.validate().is_err());
    }
}

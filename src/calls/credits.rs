//! Calling credits, checked before a call is placed and debited by its `tokensConsumed`.

use foldhash::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::CallsError;
use crate::ids::AccountId;

/// The embedding application's credit ledger.
#[async_trait]
pub trait Credits: Send + Sync {
    /// Whether the account may place a call now.
    async fn has_credit(&self, account: &AccountId) -> Result<bool, CallsError>;
    /// Takes `amount` credits (a finished call's `tokensConsumed`). The balance may go
    /// below zero: the call already happened.
    async fn debit(&self, account: &AccountId, amount: u64) -> Result<(), CallsError>;
}

/// Credits kept in memory. An account that was never given credits has none.
#[derive(Debug, Default)]
pub struct MemoryCredits {
    balances: Mutex<HashMap<AccountId, i64>>,
}

impl MemoryCredits {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an account's balance.
    pub fn set(&self, account: &AccountId, balance: i64) {
        self.lock().insert(account.clone(), balance);
    }

    /// An account's balance.
    pub fn balance(&self, account: &AccountId) -> i64 {
        self.lock().get(account).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, i64>> {
        self.balances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Credits for MemoryCredits {
    async fn has_credit(&self, account: &AccountId) -> Result<bool, CallsError> {
        Ok(self.balance(account) > 0)
    }

    async fn debit(&self, account: &AccountId, amount: u64) -> Result<(), CallsError> {
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        let mut g = self.lock();
        let b = g.entry(account.clone()).or_insert(0);
        *b = b.saturating_sub(amount);
        Ok(())
    }
}

/// Unlimited credits, for applications that do not meter calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnlimitedCredits;

#[async_trait]
impl Credits for UnlimitedCredits {
    async fn has_credit(&self, _: &AccountId) -> Result<bool, CallsError> {
        Ok(true)
    }

    async fn debit(&self, _: &AccountId, _: u64) -> Result<(), CallsError> {
        Ok(())
    }
}

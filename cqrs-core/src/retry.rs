//! The retry policy of replica models: how often and how long after a failed message is tried
//! again. The consumer (for example `cqrs_rabbit::Consumer`) carries the retries out; the
//! decision is the model's ([`crate::ReplicaHooks::cqrs_should_retry`] and
//! [`crate::ReplicaHooks::cqrs_retry_delay`]), whose defaults are the functions here.

use std::time::Duration;

use crate::error::{ApplyError, ErrorClass};

/// django-cqrs's default number of retries (`CQRS_MAX_RETRIES`).
pub const DEFAULT_MAX_RETRIES: u32 = 30;

/// django-cqrs's default delay between retries (`CQRS_RETRY_DELAY`).
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(2);

/// The consumer's retry settings, as the per-model policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Maximum retries; `None` retries forever, `Some(0)` never.
    pub max_retries: Option<u32>,
    /// The delay before each retry.
    pub delay: Duration,
}

impl Default for RetryPolicy {
    /// django-cqrs's defaults: 30 retries, 2 s apart.
    fn default() -> Self {
        Self {
            max_retries: Some(DEFAULT_MAX_RETRIES),
            delay: DEFAULT_RETRY_DELAY,
        }
    }
}

/// The default retry decision (django-cqrs's `should_retry_cqrs`): transient and
/// unavailable errors while `retries < max_retries`. A permanent error is never retried,
/// whatever a model's own policy says: [`may_retry`] checks that first.
pub fn should_retry(retries: u32, error: &ApplyError, policy: &RetryPolicy) -> bool {
    error.class() != ErrorClass::Permanent && policy.max_retries.is_none_or(|max| retries < max)
}

/// The default delay before retry number `retries + 1` (django-cqrs's
/// `get_cqrs_retry_delay`): the configured delay.
pub fn retry_delay(retries: u32, policy: &RetryPolicy) -> Duration {
    let _ = retries;
    policy.delay
}

/// Whether a failed message may be retried: never for a permanent error, otherwise as the
/// model's policy (`model_says`) decides.
pub fn may_retry(error: &ApplyError, model_says: impl FnOnce() -> bool) -> bool {
    !error.is_permanent() && model_says()
}

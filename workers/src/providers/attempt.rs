//! Which attempt of an order's step a provider call is, for its client span.
//!
//! Retries of a provider step are durable (the order's `failures` count and its task's
//! `run_at`), not a loop around the call, so the connector cannot see the attempt number.
//! The executor sets it for the duration of one step with [`scope`].

use std::future::Future;

tokio::task_local! {
    static ATTEMPT: u32;
}

/// Run `f` with `attempt` (1 = first try) visible to the provider calls it makes.
pub async fn scope<F: Future>(attempt: u32, f: F) -> F::Output {
    ATTEMPT.scope(attempt, f).await
}

/// The attempt set by the surrounding [`scope`], else 1.
pub fn current() -> u32 {
    ATTEMPT.try_with(|a| *a).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scoped_attempt_is_visible_inside_only() {
        assert_eq!(current(), 1);
        assert_eq!(scope(3, async { current() }).await, 3);
        assert_eq!(current(), 1);
    }
}

//! The worker's request timeout: one timer per slot, moved only when it must be.
//!
//! A timer per attempt (`tokio::time::timeout`) enters tokio's timer wheel when the attempt
//! starts and leaves it when the attempt ends: two wheel operations under a lock, and a
//! runtime handle fetched, for every attempt (about 2 % of the worker's CPU time in the
//! `delivery_loopback` figure). A slot runs its attempts one after another, so it keeps one
//! timer and leaves it armed at an earlier attempt's deadline, which is never later than the
//! current attempt's. When it fires before the current deadline it is moved to that
//! deadline. An attempt still times out exactly at its own deadline, and a slot moves its
//! timer about once per timeout period instead of twice per attempt.
//!
//! Enforcing the timeout here, rather than trusting the client's, also makes the lease rule
//! of [`DeliveryConfig`](super::DeliveryConfig) hold for any [`HttpClient`] whose future
//! yields to the runtime: an attempt ends before its lease does, so no other worker sends the
//! delivery meanwhile. The timer is looked at outside tokio's per-task budget, as
//! `tokio::time::timeout` does, so work that spends the budget on every poll still ends.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::client::{HttpClient, HttpResponse, TransportError};
use super::engine::Exchange;

/// A slot's timer: bounds each of the slot's attempts by `limit`.
pub(crate) struct SlotTimer {
    limit: Duration,
    /// Armed at the deadline of this or an earlier attempt; made on the first attempt.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl SlotTimer {
    /// A timer bounding each attempt by `limit`.
    pub(crate) fn new(limit: Duration) -> Self {
        SlotTimer { limit, sleep: None }
    }

    /// Runs `work` to completion, or until `limit` from now has passed (`None`). A limit
    /// too far ahead to be an [`Instant`] means no limit.
    pub(crate) async fn bound<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let Some(deadline) = Instant::now().checked_add(self.limit) else {
            return Some(work.await);
        };
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                // Left armed unless it fired already or would fire after this deadline.
                if sleep.is_elapsed() || sleep.deadline() > deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            // Armed at an earlier deadline: move it to this one and wait again. Polled
            // outside tokio's per-task budget (as `tokio::time::timeout` does): work that
            // spends the budget every time would otherwise keep the timer from ever being
            // looked at.
            while std::pin::pin!(tokio::task::coop::unconstrained(sleep.as_mut()))
                .poll(cx)
                .is_ready()
            {
                if Instant::now() >= deadline {
                    return Poll::Ready(None);
                }
                sleep.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }
}

impl Exchange for SlotTimer {
    async fn exchange(
        &mut self,
        client: &dyn HttpClient,
        request: http::Request<Bytes>,
    ) -> Result<HttpResponse, TransportError> {
        let limit = self.limit;
        match self.bound(client.send_bounded(request)).await {
            Some(result) => result,
            None => Err(TransportError::timed_out(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use super::SlotTimer;

    const LIMIT: Duration = Duration::from_millis(200);

    /// Runs `test` on a runtime with timers, failing (not hanging) if it takes 10 s.
    fn run(test: impl Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(
                tokio::time::timeout(Duration::from_secs(10), test)
                    .await
                    .is_ok(),
                "the test did not finish within 10 s"
            );
        });
    }

    /// Bounds work that never finishes: it must end (`None`), and not before `limit`.
    async fn ends_at_its_limit(timer: &mut SlotTimer, limit: Duration) {
        let started = tokio::time::Instant::now();
        assert_eq!(timer.bound(std::future::pending::<()>()).await, None);
        let took = started.elapsed();
        assert!(took >= limit, "timed out after {took:?}, before its limit");
    }

    #[test]
    fn work_that_finishes_in_time_gives_its_output() {
        run(async {
            let mut timer = SlotTimer::new(LIMIT);
            for i in 0..3 {
                assert_eq!(timer.bound(async { i }).await, Some(i));
            }
            let slow = tokio::time::sleep(Duration::from_millis(20));
            assert_eq!(timer.bound(slow).await, Some(()));
        });
    }

    #[test]
    fn work_that_never_finishes_ends_at_the_limit() {
        run(async {
            let mut timer = SlotTimer::new(LIMIT);
            ends_at_its_limit(&mut timer, LIMIT).await;
        });
    }

    /// Work that spends tokio's per-task budget on every poll still times out: the timer
    /// is looked at outside the budget.
    #[test]
    fn work_that_spends_the_budget_still_times_out() {
        run(async {
            let mut timer = SlotTimer::new(LIMIT);
            let busy = async {
                loop {
                    tokio::task::coop::consume_budget().await;
                }
            };
            assert_eq!(timer.bound(busy).await, None::<()>);
        });
    }

    /// The timer stays armed at the first attempt's deadline; a later attempt must still get
    /// its whole limit, not what was left of the first one's.
    #[test]
    fn a_later_attempt_gets_its_whole_limit() {
        run(async {
            let mut timer = SlotTimer::new(LIMIT);
            assert_eq!(timer.bound(async {}).await, Some(()));
            tokio::time::sleep(LIMIT / 2).await;
            ends_at_its_limit(&mut timer, LIMIT).await;
        });
    }

    /// Work that ends after the earlier attempt's deadline (where the timer is still armed)
    /// but within its own limit gives its output.
    #[test]
    fn work_outlasting_an_earlier_deadline_finishes() {
        run(async {
            let limit = Duration::from_millis(400);
            let mut timer = SlotTimer::new(limit);
            assert_eq!(timer.bound(async {}).await, Some(()));
            tokio::time::sleep(limit / 2).await;
            let work = tokio::time::sleep(limit * 3 / 4);
            assert_eq!(timer.bound(work).await, Some(()));
        });
    }

    /// A timer that fired long ago, while its slot was idle, is armed again.
    #[test]
    fn a_timer_that_fired_while_idle_is_armed_again() {
        run(async {
            let mut timer = SlotTimer::new(LIMIT);
            assert_eq!(timer.bound(async {}).await, Some(()));
            tokio::time::sleep(LIMIT * 2).await;
            ends_at_its_limit(&mut timer, LIMIT).await;
        });
    }

    #[test]
    fn a_limit_beyond_any_instant_is_no_limit() {
        run(async {
            let mut timer = SlotTimer::new(Duration::MAX);
            let slow = tokio::time::sleep(Duration::from_millis(20));
            assert_eq!(timer.bound(slow).await, Some(()));
        });
    }
}

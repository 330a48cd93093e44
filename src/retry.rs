//! # Retry and outage handling
//!
//! In: an operation against a remote service (the Qdrant server, the PostgreSQL catalog)
//! whose failures the caller has marked [`transient`] or not. Out: the operation's result,
//! after transient failures have been retried with exponential backoff and full jitter.
//!
//! Each service has one [`OutageClock`]. The first transient failure starts it: the service
//! is in an outage, and every call made during it keeps retrying, so the job pauses instead
//! of failing file after file, and the progress line says "waiting for Qdrant". A success
//! ends the outage. When an outage outlasts the policy's limit, calls give up with an error
//! that says so, and the job stops with its unfinished files left for the next run.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

/// Marks an error as worth retrying: the service may answer if asked again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

/// Wraps `error` so that [`is_transient`] sees it.
pub fn transient(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Transient(error.to_string()))
}

/// Whether the error, or any context added to it, is [`Transient`].
pub fn is_transient(error: &anyhow::Error) -> bool {
    error.downcast_ref::<Transient>().is_some()
}

/// How long to wait between tries, and for how long an outage may last.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first backoff; each later one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long a service may stay unreachable before the job gives up on it.
    pub outage_limit: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            outage_limit: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The backoff before try `attempt + 1`: uniform in `[0, min(max, base * 2^attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// "waiting for Qdrant (…)" notices of every service in an outage, in the order of their
/// names, or `None` when none is.
pub fn waiting_notice(clocks: &[Arc<OutageClock>]) -> Option<String> {
    let waiting: BTreeMap<&str, String> = clocks
        .iter()
        .filter_map(|clock| Some((clock.service, clock.notice.lock().expect("notice lock").clone()?)))
        .collect();
    (!waiting.is_empty()).then(|| waiting.into_values().collect::<Vec<_>>().join("; "))
}

/// The retry state of one service: how long it has been unreachable, measured from the
/// first transient failure of the current outage, against the policy's outage limit.
#[derive(Debug)]
pub struct OutageClock {
    service: &'static str,
    policy: RetryPolicy,
    /// When the current outage began; `None` while the service answers.
    down_since: Mutex<Option<Instant>>,
    /// What the wait for the service is about, while it is down; read by the progress line.
    notice: Mutex<Option<String>>,
    /// Set when the job is cancelled: a call waiting out an outage gives up at once.
    cancel: Mutex<Option<Arc<AtomicBool>>>,
    /// Calls retried after the service could not be reached, and the time spent waiting to,
    /// for the metrics.
    retries: AtomicU64,
    waited_nanos: AtomicU64,
}

impl OutageClock {
    pub fn new(service: &'static str, policy: RetryPolicy) -> Self {
        Self {
            service,
            policy,
            down_since: Mutex::new(None),
            notice: Mutex::new(None),
            cancel: Mutex::new(None),
            retries: AtomicU64::new(0),
            waited_nanos: AtomicU64::new(0),
        }
    }

    /// Calls retried so far after the service could not be reached.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Time spent so far waiting for the service to come back.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }

    /// The service's name, as messages show it.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Makes calls waiting out an outage give up as soon as `cancel` is set, instead of when
    /// the outage limit runs out.
    pub fn give_up_when(&self, cancel: Arc<AtomicBool>) {
        *self.cancel.lock().expect("cancel lock") = Some(cancel);
    }

    fn cancelled(&self) -> bool {
        self.cancel.lock().expect("cancel lock").as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Runs `operation` until it succeeds, fails for good, the outage outlasts the limit, or
    /// the job is cancelled during an outage.
    pub async fn call<T, F, Fut>(&self, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match operation().await {
                Ok(value) => {
                    self.end_outage();
                    return Ok(value);
                }
                Err(error) if is_transient(&error) => {
                    let down_for =
                        self.down_since.lock().expect("outage clock lock").get_or_insert_with(Instant::now).elapsed();
                    if down_for >= self.policy.outage_limit {
                        self.end_outage();
                        return Err(error.context(format!(
                            "{} has been unreachable for {}s, longer than the outage limit of {}s; \
                             stopping here, and the next run resumes where this one stopped",
                            self.service,
                            down_for.as_secs(),
                            self.policy.outage_limit.as_secs()
                        )));
                    }
                    let delay = self.policy.delay(attempt).min(self.policy.outage_limit - down_for);
                    attempt += 1;
                    let notice = format!(
                        "waiting for {} (down {}s, try {attempt}: {})",
                        self.service,
                        down_for.as_secs(),
                        first_line(&error)
                    );
                    *self.notice.lock().expect("notice lock") = Some(notice);
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    let (waiting, resume) = (Instant::now(), Instant::now() + delay);
                    let _count_the_wait = CountOnDrop(&self.waited_nanos, waiting);
                    while Instant::now() < resume {
                        if self.cancelled() {
                            self.end_outage();
                            return Err(error.context(format!(
                                "{} is unreachable and the job was cancelled; stopping here, and the next run \
                                 resumes where this one stopped",
                                self.service
                            )));
                        }
                        tokio::time::sleep(CANCEL_POLL.min(resume - Instant::now())).await;
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn end_outage(&self) {
        if self.down_since.lock().expect("outage clock lock").take().is_some() {
            self.notice.lock().expect("notice lock").take();
        }
    }
}

/// Adds the time since it was made to a counter of nanoseconds when dropped, however the
/// wait it times ends.
struct CountOnDrop<'a>(&'a AtomicU64, Instant);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(self.1.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// How often a call waiting out an outage looks whether the job was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(100);

fn first_line(error: &anyhow::Error) -> String {
    let text = error.root_cause().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(limit_ms: u64) -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            outage_limit: Duration::from_millis(limit_ms),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let clock = OutageClock::new("test service A", quick(10_000));
        let tries = AtomicU32::new(0);
        let value = clock
            .call(|| async {
                if tries.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(transient("refused"))
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!((value, tries.load(Ordering::SeqCst)), (7, 4));
        assert!(clock.down_since.lock().unwrap().is_none(), "a success ends the outage");
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let clock = OutageClock::new("test service B", quick(10_000));
        let tries = AtomicU32::new(0);
        let result: Result<()> = clock
            .call(|| async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(anyhow::anyhow!("bad request"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_outage_longer_than_the_limit_gives_up_with_a_clear_error() {
        let clock = OutageClock::new("test service C", quick(50));
        let started = Instant::now();
        let error = clock.call(|| async { Err::<(), _>(transient("connection refused")) }).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        let text = format!("{error:#}");
        assert!(text.contains("test service C has been unreachable") && text.contains("connection refused"), "{text}");
        assert!(is_transient(&error));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            outage_limit: Duration::from_secs(60),
        };
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100 * (1u64 << attempt.min(16))).min(Duration::from_secs(1));
            assert!(policy.delay(attempt) <= ceiling);
        }
    }
}

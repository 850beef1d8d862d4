//! Shipping a trial's observations in the background: batching, retries, final flush.
//!
//! The thread that reads the trial's output must never wait on the network (the trial would block
//! on a full pipe), so it only appends to a queue ([`Shipper::send`]); one sender thread delivers
//! batches. A batch is sent when [`ShipperConfig::batch_points`] points are waiting or the oldest
//! has waited [`ShipperConfig::flush_interval`], whichever comes first: one request a second at
//! most while a trial prints slowly, full batches when it prints fast.
//!
//! Failures follow [`PushError::is_retryable`]. Retryable ones are retried with backoff, forever
//! while the trial runs (a server restart must not cost metrics) and until the flush deadline
//! after it ended; the queue spills to disk meanwhile (see `spool.rs`). A permanent refusal stops
//! shipping for good, since every later batch would be refused the same way, and writes what is
//! left into the spool file so that it can be looked at or replayed.
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Observation;
use crate::backoff::Backoff;
use crate::push::{PushClient, PushError, REQUEST_TIMEOUT};
use crate::spool::{Batch, PointQueue};

/// Points kept in memory before spilling to disk. About 100 bytes each, so ~10 MB: small next to
/// a training process, and ~30 minutes of a trial printing 50 points a second while the server
/// is away.
pub const DEFAULT_MEMORY_POINTS: usize = 100_000;
/// Points per request: large enough that a fast trial costs few requests, small enough that one
/// request's fsync on the server stays short.
pub const DEFAULT_BATCH_POINTS: usize = 1_000;
/// The server's limit on points per request (contract: at most 10,000).
pub const MAX_BATCH_POINTS: usize = 10_000;
/// Longest a point waits for its batch to fill: metrics appear within a second, which early
/// stopping and a watching user both want, at one request a second at most.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the final flush keeps trying after the trial ended: two minutes covers a server
/// restart, and a pod being deleted is killed after its grace period anyway.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// A retry notice is printed on the first failure and then every this many failures (about every
/// 100 s once the backoff is at its cap), so a long outage is visible but does not flood stderr.
const RETRY_NOTICE_EVERY: u32 = 20;

/// Where observations are delivered; [`PushClient`] in production, fakes in tests.
pub trait Deliver: Send + 'static {
    /// Delivers one batch, giving up after `timeout`.
    fn deliver(&mut self, points: &[Observation], timeout: Duration) -> Result<(), PushError>;
}

impl Deliver for PushClient {
    fn deliver(&mut self, points: &[Observation], timeout: Duration) -> Result<(), PushError> {
        self.push(points, timeout)
    }
}

/// How a [`Shipper`] batches and buffers.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Points kept in memory before spilling to the spool file.
    pub memory_points: usize,
    /// Most points per request, 1 to [`MAX_BATCH_POINTS`].
    pub batch_points: usize,
    /// Longest a point waits for its batch to fill.
    pub flush_interval: Duration,
    /// Directory of the spool file, created when the first point spills.
    pub spool_dir: PathBuf,
    /// Seed of the backoff's jitter.
    pub seed: u64,
}

impl ShipperConfig {
    /// The defaults, spooling into `spool_dir`.
    pub fn new(spool_dir: PathBuf) -> Self {
        Self {
            memory_points: DEFAULT_MEMORY_POINTS,
            batch_points: DEFAULT_BATCH_POINTS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            spool_dir,
            seed: 0,
        }
    }
}

/// Something the user should hear about while shipping goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A batch could not be delivered and will be retried.
    Retrying {
        /// Why it failed.
        error: String,
        /// Failures in a row so far.
        failures: u32,
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// A batch was delivered after failures.
    Recovered {
        /// Failures in a row before it.
        failures: u32,
    },
    /// Shipping stopped for good; the undelivered points were written to the spool file.
    Stopped {
        /// Why (the server's refusal, with its message).
        error: String,
        /// Undelivered points.
        pending: usize,
        /// The file that holds them, when writing it worked.
        spool: Option<PathBuf>,
    },
    /// The spool file could not be written; points are kept in memory past the bound.
    SpoolUnwritable {
        /// The spool directory.
        dir: PathBuf,
        /// What the file system said.
        error: String,
    },
}

/// What the final flush achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct FlushReport {
    /// Points the server accepted, over the shipper's life.
    pub delivered: u64,
    /// Points not delivered.
    pub pending: usize,
    /// The file holding the undelivered points (JSON lines of observations), when there are any
    /// and writing it worked.
    pub spool: Option<PathBuf>,
    /// Why shipping stopped early, when the server refused the metrics for good.
    pub rejected: Option<String>,
    /// Why the undelivered points could not be written to disk, when that failed.
    pub spool_error: Option<String>,
}

type NoticeSink = dyn Fn(&Notice) + Send + Sync;

struct Shared {
    state: Mutex<State>,
    /// Signalled when points arrive or the final flush starts.
    wake: Condvar,
    notices: Box<NoticeSink>,
}

struct State {
    queue: PointQueue,
    /// When the oldest point of the current batch arrived.
    first_waiting_since: Option<Instant>,
    /// Set by [`Shipper::finish`]: give up at this instant.
    deadline: Option<Instant>,
    rejected: Option<String>,
    delivered: u64,
    warned_spool: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not lose the points: the state is consistent between calls.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ships observations from a background thread; see the module docs.
pub struct Shipper {
    shared: Arc<Shared>,
    batch_points: usize,
    sender: Option<JoinHandle<()>>,
}

impl Shipper {
    /// Starts the sender thread, delivering to `deliver` and reporting to `notices`.
    pub fn start(
        deliver: impl Deliver,
        config: ShipperConfig,
        notices: impl Fn(&Notice) + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: PointQueue::new(config.memory_points, config.spool_dir.clone()),
                first_waiting_since: None,
                deadline: None,
                rejected: None,
                delivered: 0,
                warned_spool: false,
            }),
            wake: Condvar::new(),
            notices: Box::new(notices),
        });
        let batch_points = config.batch_points.clamp(1, MAX_BATCH_POINTS);
        let sender = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("sextant-sender".into())
                .spawn(move || Sender::new(shared, deliver, config).run())
        };
        // Without a thread nothing is sent, but points are still queued and written to the
        // spool file at the end, which `finish` reports.
        let sender = sender.ok();
        Self {
            shared,
            batch_points,
            sender,
        }
    }

    /// Queues `points` for delivery. Never waits on the network.
    pub fn send(&self, points: Vec<Observation>) {
        if points.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        let was_empty = state.queue.is_empty();
        if let Err(error) = state.queue.push_all(points)
            && !state.warned_spool
        {
            state.warned_spool = true;
            (self.shared.notices)(&Notice::SpoolUnwritable {
                dir: state.queue.spool_dir().to_owned(),
                error: error.to_string(),
            });
        }
        if was_empty {
            state.first_waiting_since = Some(Instant::now());
            self.shared.wake.notify_all();
        } else if state.queue.len() >= self.batch_points {
            self.shared.wake.notify_all();
        }
    }

    /// Delivers what is left, trying for up to `timeout`, stops the sender and reports. Points
    /// still undelivered are written to the spool file.
    pub fn finish(mut self, timeout: Duration) -> FlushReport {
        {
            let mut state = self.shared.lock();
            state.deadline = Some(Instant::now() + timeout);
            self.shared.wake.notify_all();
        }
        if let Some(sender) = self.sender.take() {
            // A panicked sender leaves the queue as it was; it is persisted below either way.
            let _ = sender.join();
        }
        let mut state = self.shared.lock();
        let (pending, spool, spool_error) = match state.queue.persist() {
            Ok(Some((pending, path))) => (pending, Some(path), None),
            Ok(None) => (0, None, None),
            Err(error) => (state.queue.len(), None, Some(error.to_string())),
        };
        FlushReport {
            delivered: state.delivered,
            pending,
            spool,
            rejected: state.rejected.clone(),
            spool_error,
        }
    }
}

/// The sender thread's side.
struct Sender<D> {
    shared: Arc<Shared>,
    deliver: D,
    batch_points: usize,
    flush_interval: Duration,
    backoff: Backoff,
}

impl<D: Deliver> Sender<D> {
    fn new(shared: Arc<Shared>, deliver: D, config: ShipperConfig) -> Self {
        Self {
            shared,
            deliver,
            batch_points: config.batch_points.clamp(1, MAX_BATCH_POINTS),
            flush_interval: config.flush_interval,
            backoff: Backoff::new(config.seed),
        }
    }

    fn run(mut self) {
        while let Some((batch, timeout)) = self.next_batch() {
            if batch.points.is_empty() {
                // Only unreadable spool lines: nothing to send, drop them.
                self.shared.lock().queue.ack(&batch);
                continue;
            }
            match self.deliver.deliver(&batch.points, timeout) {
                Ok(()) => self.delivered(&batch),
                Err(error) if error.is_retryable() => self.retry_later(&error),
                Err(error) => {
                    let mut state = self.shared.lock();
                    self.stop(&mut state, error.to_string());
                    return;
                }
            }
        }
    }

    /// Waits until a batch is due and peeks it, with the time the request may take; `None` when
    /// the sender is done (flushed, past the deadline, or stopped).
    fn next_batch(&self) -> Option<(Batch, Duration)> {
        let mut state = self.shared.lock();
        let timeout = loop {
            let now = Instant::now();
            if let Some(deadline) = state.deadline {
                if state.queue.is_empty() || now >= deadline {
                    return None;
                }
                break deadline - now;
            }
            if state.queue.is_empty() {
                state = wait(&self.shared.wake, state, None);
                continue;
            }
            if state.queue.len() >= self.batch_points {
                break REQUEST_TIMEOUT;
            }
            let due = state.first_waiting_since.unwrap_or(now) + self.flush_interval;
            if now >= due {
                break REQUEST_TIMEOUT;
            }
            state = wait(&self.shared.wake, state, Some(due - now));
        };
        match state.queue.peek(self.batch_points) {
            Ok(batch) => Some((batch, timeout)),
            Err(error) => {
                self.stop(&mut state, format!("cannot read the spool file: {error}"));
                None
            }
        }
    }

    fn delivered(&mut self, batch: &Batch) {
        let mut state = self.shared.lock();
        state.queue.ack(batch);
        state.delivered += batch.points.len() as u64;
        // What is still queued has waited long enough: it goes out at once.
        if state.queue.is_empty() {
            state.first_waiting_since = None;
        }
        drop(state);
        let failures = self.backoff.failures();
        if failures > 0 {
            (self.shared.notices)(&Notice::Recovered { failures });
            self.backoff.reset();
        }
    }

    /// Sleeps the backoff's next delay, or until the flush deadline if that comes first.
    fn retry_later(&mut self, error: &PushError) {
        let delay = self.backoff.next_delay();
        let failures = self.backoff.failures();
        if failures == 1 || failures.is_multiple_of(RETRY_NOTICE_EVERY) {
            (self.shared.notices)(&Notice::Retrying {
                error: error.to_string(),
                failures,
                delay,
            });
        }
        let until = Instant::now() + delay;
        let mut state = self.shared.lock();
        loop {
            let now = Instant::now();
            let wake_at = state.deadline.map_or(until, |deadline| deadline.min(until));
            if now >= wake_at {
                return;
            }
            // Woken early by new points or by `finish`; the loop recomputes the instant.
            state = wait(&self.shared.wake, state, Some(wake_at - now));
        }
    }

    /// Stops shipping for good: records why, writes what is left to disk, tells the user.
    fn stop(&self, state: &mut State, error: String) {
        let (pending, spool) = match state.queue.persist() {
            Ok(Some((pending, path))) => (pending, Some(path)),
            Ok(None) => (0, None),
            Err(_) => (state.queue.len(), None),
        };
        (self.shared.notices)(&Notice::Stopped {
            error: error.clone(),
            pending,
            spool,
        });
        state.rejected = Some(error);
    }
}

/// Waits on `wake` for at most `timeout` (or until woken).
fn wait<'a>(
    wake: &Condvar,
    state: MutexGuard<'a, State>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, State> {
    match timeout {
        None => wake.wait(state).unwrap_or_else(PoisonError::into_inner),
        Some(timeout) => {
            wake.wait_timeout(state, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::push::classify_response;

    fn point(step: i64) -> Observation {
        Observation {
            metric_name: "loss".into(),
            value: 1.0 / (step as f64 + 1.0),
            step,
            timestamp: "2030-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    /// Answers from a script of statuses (then 200), recording accepted batches.
    #[derive(Clone, Default)]
    struct ScriptedServer {
        statuses: Arc<Mutex<Vec<u16>>>,
        accepted: Arc<Mutex<Vec<Vec<i64>>>>,
        calls: Arc<AtomicUsize>,
    }

    impl ScriptedServer {
        fn failing_first(statuses: &[u16]) -> Self {
            let server = Self::default();
            server
                .statuses
                .lock()
                .unwrap()
                .extend(statuses.iter().rev());
            server
        }

        fn accepted_steps(&self) -> Vec<i64> {
            self.accepted.lock().unwrap().concat()
        }
    }

    impl Deliver for ScriptedServer {
        fn deliver(&mut self, points: &[Observation], _: Duration) -> Result<(), PushError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let status = self.statuses.lock().unwrap().pop().unwrap_or(200);
            classify_response(status, r#"{"error":{"code":"x","message":"scripted"}}"#)?;
            self.accepted
                .lock()
                .unwrap()
                .push(points.iter().map(|p| p.step).collect());
            Ok(())
        }
    }

    fn config(dir: &std::path::Path) -> ShipperConfig {
        ShipperConfig {
            memory_points: 1000,
            batch_points: 10,
            flush_interval: Duration::from_millis(20),
            spool_dir: dir.join("spool"),
            seed: 1,
        }
    }

    fn recorded_notices() -> (Arc<Mutex<Vec<Notice>>>, impl Fn(&Notice) + Send + Sync) {
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let notices = Arc::clone(&notices);
            move |notice: &Notice| notices.lock().unwrap().push(notice.clone())
        };
        (notices, sink)
    }

    #[test]
    fn batches_are_at_most_batch_points_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let server = ScriptedServer::default();
        let shipper = Shipper::start(server.clone(), config(dir.path()), |_: &Notice| {});
        shipper.send((1..=25).map(point).collect());
        let report = shipper.finish(Duration::from_secs(10));
        assert_eq!(report.delivered, 25);
        assert_eq!(report.pending, 0);
        assert_eq!(server.accepted_steps(), (1..=25).collect::<Vec<_>>());
        assert!(
            server
                .accepted
                .lock()
                .unwrap()
                .iter()
                .all(|batch| batch.len() <= 10)
        );
    }

    #[test]
    fn a_trickle_is_sent_after_the_flush_interval_without_finish() {
        let dir = tempfile::tempdir().unwrap();
        let server = ScriptedServer::default();
        let shipper = Shipper::start(server.clone(), config(dir.path()), |_: &Notice| {});
        shipper.send(vec![point(1)]);
        let started = Instant::now();
        while server.accepted_steps().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "never sent");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(shipper.finish(Duration::from_secs(1)).delivered, 1);
    }

    #[test]
    fn retryable_failures_are_retried_without_losing_points() {
        let dir = tempfile::tempdir().unwrap();
        let server = ScriptedServer::failing_first(&[503, 500, 429, 408]);
        let (notices, sink) = recorded_notices();
        let shipper = Shipper::start(server.clone(), config(dir.path()), sink);
        shipper.send((1..=5).map(point).collect());
        let report = shipper.finish(Duration::from_secs(20));
        assert_eq!(report.pending, 0);
        assert_eq!(report.rejected, None);
        assert_eq!(server.accepted_steps(), [1, 2, 3, 4, 5]);
        assert_eq!(server.calls.load(Ordering::SeqCst), 5);
        let notices = notices.lock().unwrap();
        assert!(
            matches!(&notices[0], Notice::Retrying { failures: 1, error, .. } if error.contains("503"))
        );
        assert_eq!(notices.last(), Some(&Notice::Recovered { failures: 4 }));
    }

    #[test]
    fn a_permanent_refusal_stops_shipping_and_keeps_the_points_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let server = ScriptedServer::failing_first(&[401]);
        let (notices, sink) = recorded_notices();
        let shipper = Shipper::start(server.clone(), config(dir.path()), sink);
        shipper.send((1..=3).map(point).collect());
        let started = Instant::now();
        while notices.lock().unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "no notice");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Points that come later are kept too, and nothing more is sent.
        shipper.send((4..=5).map(point).collect());
        let report = shipper.finish(Duration::from_secs(5));
        assert_eq!(server.calls.load(Ordering::SeqCst), 1);
        assert_eq!(report.delivered, 0);
        assert_eq!(report.pending, 5);
        assert!(report.rejected.as_deref().unwrap().contains("401"));
        let spool = report.spool.unwrap();
        let kept: Vec<i64> = std::fs::read_to_string(&spool)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Observation>(line).unwrap().step)
            .collect();
        assert_eq!(kept, [1, 2, 3, 4, 5]);
        let notices = notices.lock().unwrap();
        assert!(matches!(
            &notices[0],
            Notice::Stopped { pending: 3, spool: Some(path), error } if *path == spool && error.contains("scripted")
        ));
    }

    #[test]
    fn the_final_flush_gives_up_at_its_deadline_and_says_where_the_points_are() {
        let dir = tempfile::tempdir().unwrap();
        let server = ScriptedServer::failing_first(&[503; 1000]);
        let shipper = Shipper::start(server.clone(), config(dir.path()), |_: &Notice| {});
        shipper.send((1..=4).map(point).collect());
        let started = Instant::now();
        let report = shipper.finish(Duration::from_millis(300));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(report.pending, 4);
        assert_eq!(report.rejected, None);
        let spool = report.spool.unwrap();
        assert_eq!(std::fs::read_to_string(spool).unwrap().lines().count(), 4);
    }

    #[test]
    fn points_past_the_memory_bound_are_all_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let server = ScriptedServer::failing_first(&[503, 503]);
        let mut config = config(dir.path());
        config.memory_points = 3;
        let shipper = Shipper::start(server.clone(), config, |_: &Notice| {});
        for step in 1..=50 {
            shipper.send(vec![point(step)]);
        }
        let report = shipper.finish(Duration::from_secs(20));
        assert_eq!(report.pending, 0);
        assert_eq!(server.accepted_steps(), (1..=50).collect::<Vec<_>>());
        assert!(
            !dir.path().join("spool").exists(),
            "the spool is cleaned up once everything is delivered"
        );
    }

    #[test]
    fn finishing_with_nothing_queued_is_immediate() {
        let dir = tempfile::tempdir().unwrap();
        let shipper = Shipper::start(
            ScriptedServer::default(),
            config(dir.path()),
            |_: &Notice| {},
        );
        let started = Instant::now();
        let report = shipper.finish(Duration::from_secs(60));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(report.delivered, 0);
        assert_eq!(report.spool, None);
    }
}

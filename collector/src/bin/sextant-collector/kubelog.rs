//! Log mode (`--kube-log --container NAME`): read a container's log through the Kubernetes API.
//!
//! A reader thread follows `GET .../pods/{pod}/log?container=NAME&follow=true&timestamps=true`
//! and hands lines to the main thread, which parses and queues them like wrap mode does. The main
//! thread also watches for SIGTERM, so a blocked read never delays the final flush.
//!
//! The reader's loop:
//! - **Waiting**: while the container has not started the API answers 400 "is waiting to start";
//!   the reader retries with a doubling delay ([`RETRY_FIRST_DELAY`] to [`RETRY_MAX_DELAY`]).
//!   Connection errors, 429 and 5xx are retried the same way; other refusals (403: no Role, 404:
//!   no such pod) end the collector with exit code 2.
//! - **Stream end**: the follow stream ends when the container ends or when the connection drops.
//!   Either way the reader asks for the pod's status. Not terminated: it reconnects. Terminated:
//!   it reads the log once more to its end (lossless even when the stream had dropped just before
//!   the container ended) and reports the end. A training that finished before the sidecar started
//!   is the same case: the kubelet still has the log, which is read from the beginning.
//! - **Reconnecting without losing or repeating a line** ([`LogResume`]): every line comes with the
//!   runtime's timestamp (`timestamps=true`). A reconnection asks for `sinceTime` = the newest
//!   timestamp seen, rounded down to the second (the API server passes whole seconds on to the
//!   kubelet anyway), less [`RESUME_SLACK`], and skips as many lines as were already read with a
//!   timestamp at or after that time. The kubelet filters line by line and in file order, so those
//!   are exactly the first lines of the new stream, even when stdout and stderr lines are slightly
//!   out of timestamp order. Counting all lines from the start instead would break when the kubelet
//!   rotates the log file (10 MiB by default) and the start is gone. An unterminated last line
//!   is kept only when the stream ended cleanly on a terminated container; otherwise it comes again
//!   in full on the next connection. (A re-sent point would be harmless anyway: the server keeps one
//!   value per trial, metric and step.)
//!
//! Points get the line's timestamp, not the time it was read: the log may be read long after it
//! was written.
use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sextant_collector::Shipper;
use sextant_collector::lines::LineSplitter;

use crate::CliError;
use crate::kube::{ContainerState, KubeClient, KubeError, LogOpen};
use crate::reader::MetricReader;
use crate::signals::Termination;

/// The first delay before asking again (container not started, API unreachable): containers
/// usually start within a second or two of the sidecar.
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(200);
/// The longest delay: an image pull can take minutes, and a waiting pod should not cost the API
/// server more than a request every few seconds.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);
/// After SIGTERM, how long lines still arriving are read before the final flush. The kubelet
/// signals the sidecar as the main container ends, while its last lines may be in flight.
const STOP_DRAIN_GRACE: Duration = Duration::from_secs(1);
/// How often the main thread looks at the termination flag while no line comes.
const WAKE_INTERVAL: Duration = Duration::from_millis(100);
/// How far before the newest line a reconnection starts, for lines of stdout and stderr whose
/// timestamps are slightly out of order in the log file.
const RESUME_SLACK: i64 = 1;
/// Bytes read from the stream at once.
const CHUNK_BYTES: usize = 64 * 1024;
/// Batches of lines buffered between the reader and the parser.
const EVENT_CHANNEL_CAPACITY: usize = 256;

/// How the collection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogEnd {
    /// The container terminated with this exit code and its whole log was read.
    Terminated { exit_code: i64 },
    /// SIGTERM or SIGINT came first.
    Stopped,
}

enum Event {
    Lines(Vec<(Option<Timestamp>, String)>),
    Notice(String),
    Ended { exit_code: i64 },
    Failed(KubeError),
}

/// Reads the log of `container` until it has terminated (or a signal came), shipping metrics.
pub(crate) fn run(
    client: KubeClient,
    container: &str,
    reader: &mut MetricReader,
    shipper: &Shipper,
    termination: &Termination,
) -> Result<LogEnd, CliError> {
    let (events, received) = mpsc::sync_channel(EVENT_CHANNEL_CAPACITY);
    let name = container.to_owned();
    std::thread::Builder::new()
        .name("sextant-kube-log".into())
        .spawn(move || LogFollower::new(client, name, events).run())
        .map_err(|error| CliError::Io(format!("cannot start the log reader: {error}")))?;
    let mut stop_at: Option<Instant> = None;
    let mut points = Vec::new();
    loop {
        if stop_at.is_none() && termination.requested() {
            stop_at = Some(Instant::now() + STOP_DRAIN_GRACE);
        }
        let wait = match stop_at {
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .min(WAKE_INTERVAL),
            None => WAKE_INTERVAL,
        };
        match received.recv_timeout(wait) {
            Ok(Event::Lines(lines)) => {
                let now = Timestamp::now();
                for (at, line) in &lines {
                    reader.read_line(line, at.unwrap_or(now), &mut points);
                }
                shipper.send(std::mem::take(&mut points));
            }
            Ok(Event::Notice(message)) => crate::warn(format_args!("{message}")),
            Ok(Event::Ended { exit_code }) => return Ok(LogEnd::Terminated { exit_code }),
            Ok(Event::Failed(error)) => return Err(CliError::Setup(error.to_string())),
            Err(RecvTimeoutError::Timeout) => {
                if stop_at.is_some_and(|at| Instant::now() >= at) {
                    return Ok(LogEnd::Stopped);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(CliError::Io("the log reader stopped unexpectedly".into()));
            }
        }
    }
}

/// The reader thread's state.
struct LogFollower {
    client: KubeClient,
    container: String,
    events: SyncSender<Event>,
    resume: LogResume,
    delay: Duration,
    failures: u32,
}

/// The main thread is gone: nothing left to do.
struct Hangup;

impl LogFollower {
    fn new(client: KubeClient, container: String, events: SyncSender<Event>) -> Self {
        Self {
            client,
            container,
            events,
            resume: LogResume::default(),
            delay: RETRY_FIRST_DELAY,
            failures: 0,
        }
    }

    fn run(mut self) {
        let _ = self.follow();
    }

    fn follow(&mut self) -> Result<(), Hangup> {
        let mut said_waiting = false;
        // Set once the container is known to have terminated: the next clean read is the last.
        let mut terminated: Option<i64> = None;
        loop {
            let stream = match self.client.open_log(&self.container, self.resume.since()) {
                Ok(LogOpen::Stream(stream)) => stream,
                Ok(LogOpen::Waiting(message)) => {
                    if !said_waiting {
                        said_waiting = true;
                        self.send(Event::Notice(format!(
                            "{message}; reading its log once it starts"
                        )))?;
                    }
                    self.pause();
                    continue;
                }
                Err(error) if error.is_retryable() => {
                    self.failed(&error)?;
                    continue;
                }
                Err(error) => return self.send(Event::Failed(error)),
            };
            let (clean, new_lines) = self.read(stream, terminated.is_some())?;
            if new_lines > 0 {
                self.recovered();
            }
            if clean && let Some(exit_code) = terminated {
                return self.send(Event::Ended { exit_code });
            }
            match self.client.container_state(&self.container) {
                // Read once more, to the end, now that nothing can be added.
                Ok(ContainerState::Terminated { exit_code }) => {
                    terminated = Some(exit_code);
                    continue;
                }
                Ok(ContainerState::NotTerminated) => {}
                Err(error) if error.is_retryable() => {
                    self.failed(&error)?;
                    continue;
                }
                Err(error) => return self.send(Event::Failed(error)),
            }
            if new_lines == 0 {
                self.pause();
            }
        }
    }

    /// Reads one stream to its end; `(ended cleanly, lines new to us)`. The unterminated last
    /// line is kept only when `last` (the container has terminated) and the stream ended cleanly.
    fn read(
        &mut self,
        mut stream: Box<dyn Read + Send>,
        last: bool,
    ) -> Result<(bool, u64), Hangup> {
        let mut session = Session {
            skip: self.resume.lines_to_skip(),
            new_lines: 0,
            batch: Vec::new(),
        };
        let mut splitter = LineSplitter::new();
        let mut buffer = vec![0; CHUNK_BYTES];
        let clean = loop {
            match stream.read(&mut buffer) {
                Ok(0) => break true,
                Ok(read) => {
                    splitter.feed(&buffer[..read], &mut |line| {
                        session.accept(line, &mut self.resume);
                    });
                    if !session.batch.is_empty() {
                        self.send(Event::Lines(std::mem::take(&mut session.batch)))?;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if clean && last {
            splitter.finish(&mut |line| session.accept(line, &mut self.resume));
        }
        if !session.batch.is_empty() {
            self.send(Event::Lines(session.batch))?;
        }
        Ok((clean, session.new_lines))
    }

    fn send(&self, event: Event) -> Result<(), Hangup> {
        self.events.send(event).map_err(|_| Hangup)
    }

    fn failed(&mut self, error: &KubeError) -> Result<(), Hangup> {
        self.failures += 1;
        // The first failure and then every doubling, so a long outage does not flood the log.
        if self.failures.is_power_of_two() {
            self.send(Event::Notice(format!(
                "{error}; retrying (failure {})",
                self.failures
            )))?;
        }
        self.pause();
        Ok(())
    }

    fn recovered(&mut self) {
        self.failures = 0;
        self.delay = RETRY_FIRST_DELAY;
    }

    fn pause(&mut self) {
        std::thread::sleep(self.delay);
        self.delay = (self.delay * 2).min(RETRY_MAX_DELAY);
    }
}

/// One connection's progress through the log.
struct Session {
    /// Lines at the start of this stream that were read on an earlier connection.
    skip: u64,
    new_lines: u64,
    batch: Vec<(Option<Timestamp>, String)>,
}

impl Session {
    fn accept(&mut self, line: &str, resume: &mut LogResume) {
        let (at, content) = split_timestamp(line);
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        resume.record(at);
        self.new_lines += 1;
        self.batch.push((at, content.to_owned()));
    }
}

/// `2030-01-01T00:00:00.123456789Z text` → the timestamp and `text`; a line without a timestamp
/// is all text.
fn split_timestamp(line: &str) -> (Option<Timestamp>, &str) {
    match line.split_once(' ') {
        Some((stamp, rest)) => match stamp.parse::<Timestamp>() {
            Ok(at) => (Some(at), rest),
            Err(_) => (None, line),
        },
        // A line with no text at all: just the timestamp.
        None => match line.parse::<Timestamp>() {
            Ok(at) => (Some(at), ""),
            Err(_) => (None, line),
        },
    }
}

/// Where to pick the log up again after a reconnection; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct LogResume {
    /// Lines read in all.
    lines: u64,
    newest: Option<Timestamp>,
    /// Timestamps of the lines read at or after [`LogResume::since`].
    recent: VecDeque<Timestamp>,
}

impl LogResume {
    /// Records a line read, with its timestamp (a line without one counts as the newest).
    pub(crate) fn record(&mut self, at: Option<Timestamp>) {
        self.lines += 1;
        let Some(at) = at.or(self.newest) else {
            return;
        };
        let since_before = self.since();
        if self.newest.is_none_or(|newest| at > newest) {
            self.newest = Some(at);
        }
        self.recent.push_back(at);
        let since = self.since();
        if since != since_before
            && let Some(since) = since
        {
            self.recent.retain(|seen| *seen >= since);
        }
    }

    /// The `sinceTime` to reconnect with: `None` before any timestamped line.
    pub(crate) fn since(&self) -> Option<Timestamp> {
        let newest = self.newest?;
        Timestamp::from_second(newest.as_second() - RESUME_SLACK).ok()
    }

    /// How many lines a stream from [`LogResume::since`] starts with that were read already.
    pub(crate) fn lines_to_skip(&self) -> u64 {
        match self.since() {
            None => self.lines,
            Some(since) => self.recent.iter().filter(|seen| **seen >= since).count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn timestamps_are_split_off() {
        assert_eq!(
            split_timestamp("2030-01-01T00:00:01.5Z loss=0.5 x"),
            (Some(at("2030-01-01T00:00:01.5Z")), "loss=0.5 x")
        );
        assert_eq!(
            split_timestamp("2030-01-01T00:00:01Z"),
            (Some(at("2030-01-01T00:00:01Z")), "")
        );
        assert_eq!(split_timestamp("loss=0.5 x"), (None, "loss=0.5 x"));
        assert_eq!(split_timestamp("plain"), (None, "plain"));
    }

    /// The kubelet's side: the lines with a timestamp at or after `since`, in file order.
    fn served(log: &[&str], since: Option<Timestamp>) -> Vec<Timestamp> {
        log.iter()
            .map(|stamp| at(stamp))
            .filter(|stamp| since.is_none_or(|since| *stamp >= since))
            .collect()
    }

    #[test]
    fn a_reconnection_skips_exactly_what_was_read() {
        // Out of order within a second (stdout and stderr), two lines with the same instant.
        let log = [
            "2030-01-01T00:00:00.1Z",
            "2030-01-01T00:00:01.2Z",
            "2030-01-01T00:00:01.9Z",
            "2030-01-01T00:00:01.8Z",
            "2030-01-01T00:00:02.0Z",
            "2030-01-01T00:00:02.0Z",
            "2030-01-01T00:00:03.5Z",
            "2030-01-01T00:00:02.9Z",
            "2030-01-01T00:00:04.0Z",
        ];
        for cut in 0..=log.len() {
            let mut resume = LogResume::default();
            for stamp in &log[..cut] {
                resume.record(Some(at(stamp)));
            }
            let again = served(&log, resume.since());
            let skip = usize::try_from(resume.lines_to_skip()).unwrap();
            let rest: Vec<Timestamp> = again[skip..].to_vec();
            let expected: Vec<Timestamp> = log[cut..].iter().map(|s| at(s)).collect();
            assert_eq!(rest, expected, "cut after {cut} lines");
        }
    }

    #[test]
    fn without_timestamps_lines_are_counted() {
        let mut resume = LogResume::default();
        resume.record(None);
        resume.record(None);
        assert_eq!(resume.since(), None);
        assert_eq!(resume.lines_to_skip(), 2);
        resume.record(Some(at("2030-01-01T00:00:05.5Z")));
        assert_eq!(resume.since(), Some(at("2030-01-01T00:00:04Z")));
        resume.record(None);
        assert_eq!(resume.lines_to_skip(), 2);
    }
}

//! `sextant watch EXPERIMENT`: follow an experiment on a server until it ends.
//!
//! It polls: the experiment every [`POLL_INTERVAL`], and its trials only when the experiment's
//! trial counts moved (every start and every end changes a count), so following a long
//! experiment costs one small request a second. Lines and the final table are `sextant run`'s
//! ([`ConsoleReporter`], [`summary_text`]). Ctrl-C ends the watching only; the experiment keeps
//! running on the server. A server that goes away is waited for, for [`RECONNECT_WINDOW`].

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use super::CliError;
use super::client::{ClientError, ExperimentDetail, ServerClient, off_thread};
use super::console::{ConsoleReporter, summary_text};
use super::error::{EXIT_FAILED, EXIT_INTERRUPTED};
use super::output::write_stdout;
use super::source::remote_unknown_experiment;
use crate::controller::driver::{Progress, Reporter};
use crate::controller::policy::{self, TrialCounts};
use crate::spec::CheckedExperiment;
use crate::store::{ExperimentPhase, ExperimentRecord, TrialRecord, TrialState};
use crate::view::CountsView;

/// How often the server is asked. A second keeps the lines timely for trials that take seconds
/// or more, at one small request per second.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long a server that stopped answering is waited for: long enough for a `sextant serve`
/// restart, short enough that a script does not hang on a server that is gone.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(60);

/// Arguments of `sextant watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The experiment.
    pub experiment: String,
    /// Print only the final summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `sextant watch`.
pub async fn run(args: WatchArgs, client: ServerClient) -> Result<u8, CliError> {
    follow(
        client,
        &args.experiment,
        args.quiet,
        POLL_INTERVAL,
        interrupted()?,
    )
    .await
}

/// Resolves on Ctrl-C or SIGTERM. Registered before the first request, so both are caught.
pub(crate) fn interrupted() -> Result<impl Future<Output = ()>, CliError> {
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failed(format!("cannot handle Ctrl-C: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot handle SIGTERM: {e}")))?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Follows `name` until it ends (exit 0 when it succeeded, 1 when it failed or was stopped) or
/// until `stop` resolves (130), polling every `every`.
pub async fn follow(
    client: ServerClient,
    name: &str,
    quiet: bool,
    every: Duration,
    stop: impl Future<Output = ()>,
) -> Result<u8, CliError> {
    tokio::pin!(stop);
    let mut watcher: Option<Watcher> = None;
    let mut counts: Option<CountsView> = None;
    let mut outage: Option<Instant> = None;
    loop {
        if watcher.is_some() {
            tokio::select! {
                _ = &mut stop => return Ok(stopped_watching(watcher.as_mut(), &client, name)),
                _ = tokio::time::sleep(every) => {}
            }
        }
        let polled = {
            let (asked, wanted, seen) = (client.clone(), name.to_string(), counts.clone());
            tokio::select! {
                _ = &mut stop => return Ok(stopped_watching(watcher.as_mut(), &client, name)),
                polled = off_thread(move || poll(&asked, &wanted, seen.as_ref())) => polled?,
            }
        };
        let snapshot = match polled {
            Ok(snapshot) => snapshot,
            // Mid-watch, a server that is restarting or overloaded is waited for.
            Err(e) if e.is_transient() && watcher.is_some() => {
                let since = *outage.get_or_insert_with(|| {
                    if let Some(w) = watcher.as_mut() {
                        w.reporter.note(&format!(
                            "lost the sextant server at {} ({}); retrying for up to {}s",
                            client.base(),
                            brief(&e),
                            RECONNECT_WINDOW.as_secs()
                        ));
                    }
                    Instant::now()
                });
                if since.elapsed() > RECONNECT_WINDOW {
                    return Err(e.into());
                }
                continue;
            }
            Err(e) if e.not_found().is_some() => {
                let (client, name) = (client.clone(), name.to_string());
                return Err(off_thread(move || remote_unknown_experiment(&client, &name)).await?);
            }
            Err(e) => return Err(e.into()),
        };
        if outage.take().is_some()
            && let Some(w) = watcher.as_mut()
        {
            w.reporter.note(&format!(
                "reconnected to the sextant server at {}",
                client.base()
            ));
        }
        let current = match watcher.take() {
            Some(w) => w,
            None => Watcher::new(&snapshot.detail, quiet, &client)?,
        };
        let watcher = watcher.insert(current);
        if let Some(trials) = snapshot.trials {
            counts = Some(snapshot.detail.status.trials.clone());
            watcher.update(&snapshot.detail.experiment, trials);
        }
        let record = &snapshot.detail.experiment;
        if record.phase.is_finished() {
            return watcher.finish(record);
        }
        watcher.tick(record);
    }
}

/// One poll: the experiment, and its trials when `counts` (what was last seen) changed or the
/// experiment ended.
struct Snapshot {
    detail: ExperimentDetail,
    trials: Option<Vec<TrialRecord>>,
}

fn poll(
    client: &ServerClient,
    name: &str,
    counts: Option<&CountsView>,
) -> Result<Snapshot, ClientError> {
    let detail = client.experiment(name)?;
    let changed = counts != Some(&detail.status.trials) || detail.experiment.phase.is_finished();
    let trials = if changed {
        Some(client.trials(name, None)?)
    } else {
        None
    };
    Ok(Snapshot { detail, trials })
}

/// What has been seen and shown so far.
struct Watcher {
    checked: CheckedExperiment,
    reporter: ConsoleReporter,
    /// Each trial's state when last seen.
    seen: HashMap<String, TrialState>,
    trials: Vec<TrialRecord>,
    /// False until the first list of trials: trials that ended before watching began are
    /// counted in the opening line, not shown one by one.
    primed: bool,
}

impl Watcher {
    fn new(
        detail: &ExperimentDetail,
        quiet: bool,
        client: &ServerClient,
    ) -> Result<Watcher, CliError> {
        let record = &detail.experiment;
        // The server checked this experiment when it was submitted; checking it again here gives
        // the typed objective (direction, strategies) that the lines and the table need.
        let checked = crate::spec::validate::validate(record.experiment.clone()).map_err(|e| {
            CliError::failed(format!(
                "experiment {} from {} does not pass this sextant's checks (different versions?): {e}",
                record.name,
                client.base()
            ))
        })?;
        let mut reporter = ConsoleReporter::new(quiet, checked.objective.strategies.clone());
        let c = &detail.status.trials.by_state;
        reporter.note(&format!(
            "watching experiment {} on {}: {}, {} search, {}{} trial(s) done, {} running; Ctrl-C stops \
             watching, not the experiment",
            record.name,
            client.base(),
            detail.status.status,
            checked.algorithm.name,
            c.finished(),
            checked
                .max_trial_count
                .map_or(String::new(), |n| format!("/{n}")),
            c.running,
        ));
        Ok(Watcher {
            checked,
            reporter,
            seen: HashMap::new(),
            trials: Vec::new(),
            primed: false,
        })
    }

    /// Refreshes the status line.
    fn tick(&mut self, record: &ExperimentRecord) {
        let progress = progress_of(&self.checked, record, &self.trials);
        self.reporter.tick(&progress);
    }

    /// Prints a line for each trial that started or ended since the last list.
    fn update(&mut self, record: &ExperimentRecord, trials: Vec<TrialRecord>) {
        let progress = progress_of(&self.checked, record, &trials);
        for trial in &trials {
            let before = self.seen.insert(trial.name.clone(), trial.state);
            if before == Some(trial.state) {
                continue;
            }
            let state = trial.state;
            if state == TrialState::Pending {
                continue;
            }
            if state == TrialState::Running {
                self.reporter.trial_started(trial, &progress);
                continue;
            }
            // It ended.
            if !self.primed && before.is_none() {
                continue;
            }
            let never_started = trial.started.is_none();
            if state == TrialState::Failed && never_started {
                // `run` shows a trial that could not start with its started line.
                self.reporter.trial_started(trial, &progress);
                continue;
            }
            if before != Some(TrialState::Running) && !never_started {
                self.reporter.trial_started(trial, &progress);
            }
            self.reporter.trial_finished(trial, &progress);
        }
        self.trials = trials;
        self.primed = true;
    }

    /// The closing line, the table, and the exit code.
    fn finish(&mut self, record: &ExperimentRecord) -> Result<u8, CliError> {
        self.reporter.clear_status();
        let (verb, code) = match record.phase {
            ExperimentPhase::Succeeded => ("succeeded", 0),
            ExperimentPhase::Stopped => ("was stopped", EXIT_FAILED),
            _ => ("failed", EXIT_FAILED),
        };
        eprintln!("experiment {} {verb}: {}", record.name, record.message);
        write_stdout(&summary_text(&self.checked, &self.trials))?;
        Ok(code)
    }
}

fn progress_of<'a>(
    checked: &CheckedExperiment,
    record: &ExperimentRecord,
    trials: &'a [TrialRecord],
) -> Progress<'a> {
    let since = record.started.unwrap_or(record.created);
    Progress {
        counts: TrialCounts::of(trials),
        best: policy::best_trial(checked.objective.direction, trials),
        elapsed: jiff::Timestamp::now()
            .duration_since(since)
            .try_into()
            .unwrap_or_default(),
        max_trials: checked.max_trial_count,
    }
}

/// Ctrl-C: say that only the watching stopped (exit 130).
fn stopped_watching(watcher: Option<&mut Watcher>, client: &ServerClient, name: &str) -> u8 {
    if let Some(w) = watcher {
        w.reporter.clear_status();
    }
    eprintln!(
        "stopped watching; experiment {name} keeps running on {} (`sextant watch {name}` follows it again)",
        client.base()
    );
    EXIT_INTERRUPTED
}

/// The cause without the "is `sextant serve` running?" advice, for the retry line.
fn brief(e: &ClientError) -> String {
    match e {
        ClientError::Unreachable { detail, .. } => detail.clone(),
        ClientError::Api { error, .. } => format!("HTTP {}: {}", error.status, error.message),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::error::EXIT_BAD_INPUT;
    use crate::cli::mock_server::{MockServer, make_trial, seed_digits};

    /// Polls fast so the tests take milliseconds.
    const FAST: Duration = Duration::from_millis(20);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_rides_out_an_outage_and_exits_0_when_the_experiment_succeeds() {
        let mock = MockServer::start().await;
        let mut record = seed_digits(&mock.store, Path::new("/experiments"));
        // The first poll is requests 0..4 (the experiment, then its 5 trials in pages of
        // PAGE_CAP = 2); then the server is away for two polls.
        mock.set_outage(4..6);
        let watching = tokio::spawn(follow(
            mock.client(),
            "digits-random",
            false,
            FAST,
            std::future::pending(),
        ));
        tokio::time::timeout(Duration::from_secs(10), async {
            while mock.requests().len() < 8 {
                tokio::time::sleep(FAST).await;
            }
        })
        .await
        .expect("watch keeps polling through the outage");
        assert!(!watching.is_finished());
        let done = make_trial(&record, 3, TrialState::Succeeded, Some(0.99));
        mock.store.put_trial(&done).unwrap();
        record.phase = ExperimentPhase::Succeeded;
        mock.store.put_experiment(&record).unwrap();
        let code = tokio::time::timeout(Duration::from_secs(10), watching)
            .await
            .expect("watch ends once the experiment has")
            .unwrap()
            .unwrap();
        assert_eq!(code, 0);
        let trial_lists = mock
            .requests()
            .iter()
            .filter(|r| r.uri.contains("/trials?") && r.uri.ends_with("offset=0"))
            .count();
        assert!(trial_lists >= 2, "trials are read again once counts change");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_exits_1_for_failed_and_stopped_and_130_when_interrupted() {
        let mock = MockServer::start().await;
        let mut record = seed_digits(&mock.store, Path::new("/experiments"));
        let stop_now = std::future::ready(());
        let code = follow(mock.client(), "digits-random", true, FAST, stop_now).await;
        assert_eq!(code.unwrap(), EXIT_INTERRUPTED);
        for phase in [ExperimentPhase::Failed, ExperimentPhase::Stopped] {
            record.phase = phase;
            mock.store.put_experiment(&record).unwrap();
            let never = std::future::pending();
            let code = follow(mock.client(), "digits-random", true, FAST, never).await;
            assert_eq!(code.unwrap(), EXIT_FAILED, "{phase:?}");
        }
        let never = std::future::pending();
        let e = follow(mock.client(), "nope", true, FAST, never)
            .await
            .unwrap_err();
        assert_eq!(e.code, EXIT_BAD_INPUT);
        assert!(e.message.contains("known: digits-random"), "{}", e.message);
    }
}

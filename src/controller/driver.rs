//! The control loop: ask the policy, ask the engine, start trials, take in what they report.
//!
//! The driver knows a [`TrialRuntime`] only through its trait, so the same loop runs local
//! processes now and other runtimes later. Everything it learns goes to the store first; it flushes
//! before it reports a trial as finished, so what the user saw survives a crash.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sextant_algorithms::early_stopping::{Decision as StopDecision, StoppingRule};
use sextant_algorithms::{CompletedTrial, Point, SuggestRequest};
use sextant_suggestion::ConfiguredEngine;
use tokio::sync::mpsc::UnboundedReceiver;

use super::metrics;
use super::policy::{self, Completion, Decision, TrialCounts};
use crate::runtime::{ExitOutcome, RuntimeEvent, TrialRuntime};
use crate::spec::DEFAULT_NAMESPACE;
use crate::spec::template::{TrialIdentity, render_trial_spec};
use crate::spec::{CheckedExperiment, Direction, ParameterAssignment};
use crate::store::{ExperimentPhase, ExperimentRecord, Store, StoreError, TrialRecord, TrialState};

/// How often progress is reported while nothing else happens.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Katib's trial condition reasons.
pub mod trial_reason {
    /// Created.
    pub const CREATED: &str = "TrialCreated";
    /// Running.
    pub const RUNNING: &str = "TrialRunning";
    /// Succeeded.
    pub const SUCCEEDED: &str = "TrialSucceeded";
    /// Failed.
    pub const FAILED: &str = "TrialFailed";
    /// Killed.
    pub const KILLED: &str = "TrialKilled";
    /// Metrics unavailable.
    pub const METRICS_UNAVAILABLE: &str = "TrialMetricsUnavailable";
    /// Stopped by an early-stopping rule.
    pub const EARLY_STOPPED: &str = "TrialEarlyStopped";
}

/// Where the run stands, for progress output.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Trials by state.
    pub counts: TrialCounts,
    /// The best trial so far.
    pub best: Option<&'a TrialRecord>,
    /// Time since this run started.
    pub elapsed: Duration,
    /// `maxTrialCount`.
    pub max_trials: Option<u32>,
}

/// Receives progress as the run goes. `Send`, so a server can run drivers on its worker threads.
pub trait Reporter: Send {
    /// A one-off message for the user.
    fn note(&mut self, message: &str);
    /// A trial started (or failed to).
    fn trial_started(&mut self, trial: &TrialRecord, progress: &Progress<'_>);
    /// A trial ended.
    fn trial_finished(&mut self, trial: &TrialRecord, progress: &Progress<'_>);
    /// Nothing happened for a while.
    fn tick(&mut self, progress: &Progress<'_>);
}

/// What the rest of a server asks of a running driver.
#[derive(Debug)]
pub enum DriverCommand {
    /// Stop one trial (it ends Killed). The reply says whether it was running.
    StopTrial {
        /// The trial.
        trial: String,
        /// The trial as it stands, or why it cannot be stopped.
        reply: tokio::sync::oneshot::Sender<Result<TrialRecord, String>>,
    },
    /// Points a trial pushed; they are already durable in the store.
    Pushed {
        /// The trial.
        trial: String,
        /// The points.
        points: Vec<sextant_collector::Observation>,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The experiment completed.
    Completed(Completion),
    /// The run was interrupted; running it again resumes.
    Interrupted,
}

/// Why the loop could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed.
    #[error("the {engine} engine: {message}")]
    Engine {
        /// Engine name.
        engine: String,
        /// What it said.
        message: String,
    },
    /// A trial could not be started: the template cannot run here.
    #[error(
        "trial {trial} could not start: {message}\nfix the trial template, then run the same command again to resume"
    )]
    Start {
        /// The trial.
        trial: String,
        /// Why.
        message: String,
    },
}

/// One experiment's control loop.
pub struct Driver<'s, R: TrialRuntime> {
    store: &'s Store,
    checked: CheckedExperiment,
    record: ExperimentRecord,
    engine: ConfiguredEngine,
    runtime: R,
    events: UnboundedReceiver<RuntimeEvent>,
    log_dir: PathBuf,
    trials: Vec<TrialRecord>,
    by_name: HashMap<String, usize>,
    exhausted: bool,
    /// Trials asked to stop, and what they become when they exit.
    stopping: HashMap<String, StopRequest>,
    /// Each trial's objective as a loss curve `(step, loss)`, for early-stopping rules.
    curves: HashMap<String, Vec<(i64, f64)>>,
    started_at: Instant,
    commands: Option<UnboundedReceiver<DriverCommand>>,
    /// Set before `shutdown` resolves when running trials should be left running (the server is
    /// restarting and the runtime's trials outlive it); unset, they are stopped.
    leave_running: Option<Arc<AtomicBool>>,
}

impl<'s, R: TrialRuntime> Driver<'s, R> {
    /// A driver for an experiment already in the store. Trials left Pending or Running by an earlier
    /// run that did not finish are marked Killed (the runtime stops whatever of them still runs).
    pub fn new(
        store: &'s Store,
        checked: CheckedExperiment,
        mut record: ExperimentRecord,
        engine: ConfiguredEngine,
        mut runtime: R,
        events: UnboundedReceiver<RuntimeEvent>,
        log_dir: PathBuf,
    ) -> Result<Self, DriverError> {
        let mut trials = store.trials(&record.name)?;
        let now = Timestamp::now();
        for trial in trials.iter_mut().filter(|t| t.state.is_active()) {
            if runtime.trials_outlive_driver()
                && let Some(token) = store.trial_token(&trial.name)?
            {
                match runtime.adopt(trial, &token) {
                    Ok(()) => {
                        trial.metrics = metrics::summarize(&store.observations(trial.uid, None)?);
                        if trial.state == TrialState::Pending {
                            trial.started = Some(now);
                            trial.transition(
                                TrialState::Running,
                                trial_reason::RUNNING,
                                "Trial is running (picked up after a restart)",
                                now,
                            );
                        }
                        store.put_trial(trial)?;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(trial = trial.name, "cannot pick up the trial: {e}");
                    }
                }
            }
            runtime.recover(trial);
            trial.metrics = metrics::summarize(&store.observations(trial.uid, None)?);
            trial.pid = None;
            trial.finished = Some(now);
            trial.transition(
                TrialState::Killed,
                trial_reason::KILLED,
                "cut off: sextant stopped before this trial finished; it does not count toward maxTrialCount and its point may be tried again",
                now,
            );
            store.put_trial(trial)?;
        }
        record.phase = ExperimentPhase::Running;
        record.reason = policy::reason::RUNNING.to_string();
        record.message = "Experiment is running".to_string();
        record.started = Some(now);
        record.completed = None;
        store.put_experiment(&record)?;
        store.flush()?;
        let direction = checked.objective.direction;
        let mut curves = HashMap::new();
        for trial in &trials {
            let points = store.observations(trial.uid, Some(&checked.objective.metric))?;
            let curve = points
                .iter()
                .map(|p| (p.step, policy::as_loss(direction, p.value)))
                .collect();
            curves.insert(trial.name.clone(), curve);
        }
        let by_name = trials
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Driver {
            store,
            checked,
            record,
            engine,
            runtime,
            events,
            log_dir,
            trials,
            by_name,
            exhausted: false,
            stopping: HashMap::new(),
            curves,
            started_at: Instant::now(),
            commands: None,
            leave_running: None,
        })
    }

    /// Takes commands (stop a trial, pushed points) from the rest of a server while it runs.
    pub fn with_commands(mut self, commands: UnboundedReceiver<DriverCommand>) -> Self {
        self.commands = Some(commands);
        self
    }

    /// Lets the caller decide, when it shuts the driver down, that running trials stay running
    /// (set `flag` before the shutdown future resolves). Only runtimes whose trials outlive the
    /// driver honour it.
    pub fn with_leave_running(mut self, flag: Arc<AtomicBool>) -> Self {
        self.leave_running = Some(flag);
        self
    }

    /// Runs until the experiment completes or `shutdown` resolves; running trials are then stopped
    /// and marked Killed with the message `shutdown` resolved to (unless they are left running,
    /// see [`Driver::with_leave_running`]).
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = String>,
        reporter: &mut dyn Reporter,
    ) -> Result<(RunOutcome, ExperimentRecord), DriverError> {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        ticker.tick().await;
        loop {
            let decision = policy::decide(
                &self.checked,
                &self.trials,
                self.exhausted,
                self.runtime.free_slots(),
            );
            match decision {
                Decision::Complete(completion) => {
                    let reason = format!("experiment completed: {}", completion.reason());
                    self.stop_all(&reason, reporter).await?;
                    self.complete(completion)?;
                    return Ok((RunOutcome::Completed(completion), self.record));
                }
                Decision::Continue { new_trials } if new_trials > 0 && !self.exhausted => {
                    match self.create_trials(new_trials, reporter) {
                        // Nothing created: the engine waits for running trials (or is exhausted,
                        // which the next decision handles). Nothing running means it never will.
                        Ok(0) if !self.exhausted && TrialCounts::of(&self.trials).active() == 0 => {
                            return Err(DriverError::Engine {
                                engine: self.engine.engine.name().into(),
                                message: format!(
                                    "returned no point for {new_trials} requested, with no trial running, without saying it is exhausted"
                                ),
                            });
                        }
                        Ok(0) if self.exhausted => continue,
                        Ok(0) => {}
                        Ok(_) => continue,
                        Err(error) => {
                            // Leave nothing running behind: trials already started are stopped.
                            self.stop_all(
                                "stopped: another trial of this experiment could not start",
                                reporter,
                            )
                            .await?;
                            self.store.flush()?;
                            return Err(error);
                        }
                    }
                }
                Decision::Continue { .. } => {}
            }
            if TrialCounts::of(&self.trials).active() == 0 {
                // Nothing runs and nothing may start: the runtime has no room at all.
                return Err(DriverError::Engine {
                    engine: "runtime".into(),
                    message: "no trial can start: the runtime has no free slot (GPUs?)".into(),
                });
            }
            tokio::select! {
                event = self.events.recv() => {
                    let Some(event) = event else { continue };
                    let mut finished = Vec::new();
                    finished.extend(self.handle(event)?);
                    while let Ok(event) = self.events.try_recv() {
                        finished.extend(self.handle(event)?);
                    }
                    // One flush for the whole batch, before anything is reported as done.
                    self.store.flush()?;
                    self.report_finished(&finished, reporter);
                }
                command = next_command(&mut self.commands) => {
                    if let Some(i) = self.command(command)? {
                        self.store.flush()?;
                        self.report_finished(&[i], reporter);
                    }
                }
                message = &mut shutdown => {
                    let leave = self.leave_running.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
                        && self.runtime.trials_outlive_driver();
                    if !leave {
                        self.stop_all(&message, reporter).await?;
                    }
                    self.store.flush()?;
                    return Ok((RunOutcome::Interrupted, self.record));
                }
                _ = ticker.tick() => {
                    let progress = self.progress();
                    reporter.tick(&progress);
                }
            }
        }
    }

    fn report_finished(&self, finished: &[usize], reporter: &mut dyn Reporter) {
        let progress = self.progress();
        for &i in finished {
            reporter.trial_finished(&self.trials[i], &progress);
        }
    }

    fn progress(&self) -> Progress<'_> {
        Progress {
            counts: TrialCounts::of(&self.trials),
            best: policy::best_trial(self.checked.objective.direction, &self.trials),
            elapsed: self.started_at.elapsed(),
            max_trials: self.checked.max_trial_count,
        }
    }

    fn suggest(&mut self, count: u32) -> Result<Vec<Point>, DriverError> {
        let space = &self.checked.space;
        let direction = self.checked.objective.direction;
        let engine_error = |message: String| DriverError::Engine {
            engine: self.engine.engine.name().into(),
            message,
        };
        let mut history = Vec::new();
        let mut pending = Vec::new();
        for trial in &self.trials {
            if trial.state == TrialState::Killed {
                continue;
            }
            let pairs: Vec<(String, String)> = trial
                .assignments
                .iter()
                .map(|a| (a.name.clone(), a.value.clone()))
                .collect();
            let point = space
                .parse(&pairs)
                .map_err(|e| engine_error(format!("trial {}: {e}", trial.name)))?;
            if trial.state.is_active() {
                pending.push(point);
            } else {
                let loss = match trial.state {
                    TrialState::Succeeded | TrialState::EarlyStopped => {
                        trial.objective.map(|v| policy::as_loss(direction, v))
                    }
                    _ => None,
                };
                history.push(CompletedTrial { point, loss });
            }
        }
        let state = self.store.engine_state(&self.record.name)?;
        let request = SuggestRequest {
            space,
            history: &history,
            pending: &pending,
            count: count as usize,
            seed: self.record.seed,
            state: state.as_ref(),
        };
        let suggestions = self
            .engine
            .engine
            .suggest(&request)
            .map_err(|e| engine_error(e.to_string()))?;
        self.store
            .put_engine_state(&self.record.name, &suggestions.state)?;
        if suggestions.exhausted {
            self.exhausted = true;
        }
        Ok(suggestions.points)
    }

    /// Creates and starts up to `count` trials; returns how many were created.
    fn create_trials(
        &mut self,
        count: u32,
        reporter: &mut dyn Reporter,
    ) -> Result<usize, DriverError> {
        let points = self.suggest(count)?;
        let created_count = points.len();
        let now = Timestamp::now();
        let mut created = Vec::new();
        for point in points {
            let index = self.record.trials_created;
            self.record.trials_created += 1;
            let name = trial_name(&self.record.name, index);
            let assignments = self
                .checked
                .space
                .render(&point)
                .into_iter()
                .map(|(name, value)| ParameterAssignment { name, value })
                .collect();
            let mut trial = TrialRecord {
                log_path: self.log_dir.join(format!("{name}.log")),
                name,
                experiment: self.record.name.clone(),
                index,
                uid: self.store.next_id()?,
                assignments,
                state: TrialState::Pending,
                reason: String::new(),
                message: String::new(),
                events: Vec::new(),
                created: now,
                started: None,
                finished: None,
                pid: None,
                exit_code: None,
                gpus: Vec::new(),
                metrics: Vec::new(),
                objective: None,
            };
            trial.transition(
                TrialState::Pending,
                trial_reason::CREATED,
                "Trial is created",
                now,
            );
            let token = crate::auth::new_token();
            self.store.put_trial(&trial)?;
            self.store.put_trial_token(&trial.name, &token)?;
            created.push((trial, token));
        }
        // Names and the counter are durable before any process starts, so a crash can neither lose
        // a running trial nor reuse its name.
        self.store.put_experiment(&self.record)?;
        self.store.flush()?;
        for (mut trial, token) in created {
            let identity = TrialIdentity {
                name: trial.name.clone(),
                namespace: self
                    .checked
                    .experiment
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            };
            let started = render_trial_spec(&self.checked.template, &trial.assignments, &identity)
                .map_err(|e| e.to_string())
                .and_then(|workload| {
                    self.runtime
                        .start(&trial, &workload, &token)
                        .map_err(|e| e.to_string())
                });
            let now = Timestamp::now();
            let start_error = match started {
                Ok(started) => {
                    trial.pid = started.pid;
                    trial.gpus = started.gpus;
                    trial.started = Some(now);
                    let message = if trial.gpus.is_empty() {
                        "Trial is running".to_string()
                    } else {
                        format!("Trial is running on GPU {}", trial.gpus.join(","))
                    };
                    trial.transition(TrialState::Running, trial_reason::RUNNING, message, now);
                    None
                }
                Err(message) => {
                    trial.finished = Some(now);
                    trial.transition(
                        TrialState::Failed,
                        trial_reason::FAILED,
                        format!("could not start: {message}"),
                        now,
                    );
                    Some(message)
                }
            };
            self.store.put_trial(&trial)?;
            self.by_name.insert(trial.name.clone(), self.trials.len());
            self.trials.push(trial);
            let progress = self.progress();
            reporter.trial_started(self.trials.last().expect("just pushed"), &progress);
            if let Some(message) = start_error {
                let trial = self.trials.last().expect("just pushed").name.clone();
                self.store.flush()?;
                return Err(DriverError::Start { trial, message });
            }
        }
        self.store.flush()?;
        Ok(created_count)
    }

    /// Applies one runtime event; returns the index of the trial it finished, if any. The caller
    /// flushes the store and then reports finished trials.
    fn handle(&mut self, event: RuntimeEvent) -> Result<Option<usize>, DriverError> {
        match event {
            RuntimeEvent::Observations { trial, points } => {
                let Some(&i) = self.by_name.get(&trial) else {
                    return Ok(None);
                };
                self.store.put_observations(self.trials[i].uid, &points)?;
                self.take_points(i, &points)?;
            }
            RuntimeEvent::Exited { trial, outcome } => {
                let Some(&i) = self.by_name.get(&trial) else {
                    return Ok(None);
                };
                self.runtime.forget(&trial);
                let points = self.store.observations(self.trials[i].uid, None)?;
                let summaries = metrics::summarize(&points);
                let objective = metrics::objective_value(&self.checked.objective, &summaries);
                let stop_reason = self.stopping.remove(&trial);
                let metric = self.checked.objective.metric.clone();
                let now = Timestamp::now();
                let record = &mut self.trials[i];
                record.metrics = summaries;
                record.finished = Some(now);
                record.pid = None;
                if let ExitOutcome::Code(code) = outcome {
                    record.exit_code = Some(code);
                }
                let (state, reason, message) = match (stop_reason, outcome) {
                    (Some(stop), _) => (stop.state, stop.reason, stop.message),
                    (None, ExitOutcome::Code(0)) if objective.is_some() => (
                        TrialState::Succeeded,
                        trial_reason::SUCCEEDED,
                        "Trial has succeeded".to_string(),
                    ),
                    (None, ExitOutcome::Code(0)) => (
                        TrialState::MetricsUnavailable,
                        trial_reason::METRICS_UNAVAILABLE,
                        format!(
                            "the trial exited 0 but never reported the objective metric {metric:?}; print lines like `{metric}=0.93` (or set metricsCollectorSpec); see the trial log"
                        ),
                    ),
                    (None, ExitOutcome::Code(code)) => (
                        TrialState::Failed,
                        trial_reason::FAILED,
                        format!(
                            "the trial exited with code {code}{}",
                            last_line_hint(&record.log_path)
                        ),
                    ),
                    (None, ExitOutcome::Signal(signal)) => (
                        TrialState::Failed,
                        trial_reason::FAILED,
                        format!(
                            "the trial was killed by signal {signal}{}",
                            last_line_hint(&record.log_path)
                        ),
                    ),
                    (None, ExitOutcome::Error(error)) => {
                        (TrialState::Failed, trial_reason::FAILED, error)
                    }
                };
                record.objective = match state {
                    TrialState::Succeeded | TrialState::EarlyStopped => objective,
                    _ => None,
                };
                record.transition(state, reason, message, now);
                self.store.put_trial(&self.trials[i])?;
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Applies a server command; returns the index of a trial whose record changed after it had
    /// finished (late pushed points), for the caller to flush and report.
    fn command(&mut self, command: DriverCommand) -> Result<Option<usize>, DriverError> {
        match command {
            DriverCommand::StopTrial { trial, reply } => {
                let answer = match self.by_name.get(&trial).map(|&i| &self.trials[i]) {
                    None => Err(format!("trial {trial} is not part of this run")),
                    Some(record) if !record.state.is_active() => Err(format!(
                        "trial {trial} has already ended ({}); only a Pending or Running trial can be stopped",
                        record.state
                    )),
                    Some(record) => {
                        let record = record.clone();
                        self.stopping
                            .entry(trial.clone())
                            .or_insert_with(|| StopRequest {
                                state: TrialState::Killed,
                                reason: trial_reason::KILLED,
                                message: "stopped on request".to_string(),
                            });
                        self.runtime.stop(&trial);
                        Ok(record)
                    }
                };
                let _ = reply.send(answer);
                Ok(None)
            }
            DriverCommand::Pushed { trial, points } => {
                let Some(&i) = self.by_name.get(&trial) else {
                    return Ok(None);
                };
                if self.trials[i].state.is_active() {
                    self.take_points(i, &points)?;
                    return Ok(None);
                }
                // Points that land after the trial ended (a sidecar's last flush): its summary and
                // objective are recomputed from everything stored; its state stays.
                metrics::refresh_finished_trial(
                    self.store,
                    &self.checked.objective,
                    &mut self.trials[i],
                )?;
                Ok(Some(i))
            }
        }
    }

    /// Takes points of trial `i` that are in the store: its summary, its curve, early stopping.
    fn take_points(
        &mut self,
        i: usize,
        points: &[sextant_collector::Observation],
    ) -> Result<(), DriverError> {
        metrics::merge(&mut self.trials[i].metrics, points);
        let direction = self.checked.objective.direction;
        let curve = self.curves.entry(self.trials[i].name.clone()).or_default();
        for point in points
            .iter()
            .filter(|p| p.metric_name == self.checked.objective.metric)
        {
            add_to_curve(curve, point.step, policy::as_loss(direction, point.value));
        }
        self.apply_early_stopping(i);
        Ok(())
    }

    /// Asks the experiment's early-stopping rule about trial `i` after it reported; stops it when
    /// the rule says so. Called where observations arrive, so a decision is taken at the point
    /// that decides it.
    fn apply_early_stopping(&mut self, i: usize) {
        let Some(rule) = self.checked.early_stopping.as_ref() else {
            return;
        };
        let trial = &self.trials[i];
        if trial.state != TrialState::Running || self.stopping.contains_key(&trial.name) {
            return;
        }
        let Some(curve) = self.curves.get(&trial.name) else {
            return;
        };
        let others: Vec<&[(i64, f64)]> = self
            .curves
            .iter()
            .filter(|(name, curve)| *name != &trial.name && !curve.is_empty())
            .map(|(_, curve)| curve.as_slice())
            .collect();
        if let StopDecision::Stop {
            rule: rule_name,
            step,
            threshold,
            value,
            reason,
        } = rule.decide(curve, &others)
        {
            let name = trial.name.clone();
            // Rules work on losses (lower is better); say it in the objective's own terms.
            let objective = &self.checked.objective;
            let reason = match objective.direction {
                Direction::Minimize => reason,
                Direction::Maximize => format!(
                    "{rule_name}: best {metric} {best} by step {step} is below {cutoff}, the value it had to reach \
                     among the {others} other trials compared at that step",
                    metric = objective.metric,
                    best = format_args!("{:.4}", -value),
                    cutoff = format_args!("{:.4}", -threshold),
                    others = others.len(),
                ),
            };
            self.stopping.insert(
                name.clone(),
                StopRequest {
                    state: TrialState::EarlyStopped,
                    reason: trial_reason::EARLY_STOPPED,
                    message: reason,
                },
            );
            self.runtime.stop(&name);
        }
    }

    async fn stop_all(
        &mut self,
        reason: &str,
        reporter: &mut dyn Reporter,
    ) -> Result<(), DriverError> {
        let active: Vec<String> = self
            .trials
            .iter()
            .filter(|t| t.state.is_active())
            .map(|t| t.name.clone())
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        let mut waiting: HashSet<String> = HashSet::new();
        for name in active {
            // A trial an early-stopping rule already stopped stays EarlyStopped.
            self.stopping
                .entry(name.clone())
                .or_insert_with(|| StopRequest {
                    state: TrialState::Killed,
                    reason: trial_reason::KILLED,
                    message: reason.to_string(),
                });
            self.runtime.stop(&name);
            waiting.insert(name);
        }
        while !waiting.is_empty() {
            let Some(event) = self.events.recv().await else {
                break;
            };
            if let RuntimeEvent::Exited { trial, .. } = &event {
                waiting.remove(trial);
            }
            if let Some(i) = self.handle(event)? {
                self.store.flush()?;
                self.report_finished(&[i], reporter);
            }
        }
        Ok(())
    }

    fn complete(&mut self, completion: Completion) -> Result<(), DriverError> {
        self.record.phase = if completion.succeeded() {
            ExperimentPhase::Succeeded
        } else {
            ExperimentPhase::Failed
        };
        self.record.reason = completion.reason().to_string();
        self.record.message = completion.message().to_string();
        self.record.completed = Some(Timestamp::now());
        self.store.put_experiment(&self.record)?;
        self.store.flush()?;
        Ok(())
    }
}

/// Adds a point to a loss curve kept sorted by step. Points arrive in step order almost always; a
/// step seen again (a re-sent push) replaces its value, as it does in the store.
fn add_to_curve(curve: &mut Vec<(i64, f64)>, step: i64, loss: f64) {
    let at = curve.partition_point(|&(s, _)| s <= step);
    match at.checked_sub(1).map(|i| &mut curve[i]) {
        Some(last) if last.0 == step => last.1 = loss,
        _ => curve.insert(at, (step, loss)),
    }
}

/// The next command, or never when the driver takes none.
async fn next_command(commands: &mut Option<UnboundedReceiver<DriverCommand>>) -> DriverCommand {
    match commands {
        Some(receiver) => match receiver.recv().await {
            Some(command) => command,
            None => {
                // Every sender is gone: nobody will ask again.
                *commands = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Why the driver stopped a trial, applied when its process has exited.
#[derive(Debug, Clone)]
struct StopRequest {
    state: TrialState,
    reason: &'static str,
    message: String,
}

/// Trial names are the experiment's name and a 1-based sequence number: unique, stable across
/// resumes (the counter is stored before a trial starts), and easy to type.
pub fn trial_name(experiment: &str, index: u64) -> String {
    format!("{experiment}-{:04}", index + 1)
}

/// `; last output: "..."` from the end of a trial's log, to make a failure self-explaining.
fn last_line_hint(log_path: &std::path::Path) -> String {
    const MAX_HINT_CHARS: usize = 200;
    let Ok(text) = std::fs::read_to_string(log_path) else {
        return String::new();
    };
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => {
            let line: String = line.trim().chars().take(MAX_HINT_CHARS).collect();
            format!("; last output: {line:?}")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_stay_sorted_and_a_repeated_step_replaces_its_value() {
        let mut curve = Vec::new();
        for (step, loss) in [(1, 0.9), (3, 0.5), (2, 0.7), (3, 0.4), (0, 1.0)] {
            add_to_curve(&mut curve, step, loss);
        }
        // Regression: a re-sent push used to add step 3 twice, weighting it in the rules.
        assert_eq!(curve, vec![(0, 1.0), (1, 0.9), (2, 0.7), (3, 0.4)]);
    }
}

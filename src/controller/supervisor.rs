//! Runs many experiments at once for a server: one driver task each, trials as local processes
//! sharing one GPU pool. Experiments are started, stopped, deleted and resumed after a restart
//! here; the HTTP layer only asks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use sextant_collector::Observation;
use sextant_suggestion::ConfiguredEngine;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::driver::{Driver, DriverCommand, Progress, Reporter, RunOutcome};
use super::metrics;
use crate::runtime::gpu::GpuPool;
use crate::runtime::local::{LocalConfig, LocalRuntime, admit};
use crate::runtime::{RuntimeEvent, TrialRuntime};
use crate::spec::{self, CheckedExperiment};
use crate::store::{ExperimentPhase, ExperimentRecord, Store, StoreError, TrialRecord};

/// Katib-style reason of an experiment stopped on request.
pub const STOPPED_REASON: &str = "ExperimentStopped";

/// Why a running experiment is asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopCause {
    /// Someone asked: it ends Stopped and is not resumed.
    Request,
    /// The server is shutting down: it is resumed when the server starts again.
    Shutdown,
}

/// Why the supervisor could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The experiment cannot run here.
    #[error("{0}")]
    Refused(String),
    /// The trial cannot be stopped.
    #[error("{0}")]
    NotStoppable(String),
}

struct Running {
    commands: mpsc::UnboundedSender<DriverCommand>,
    stop: watch::Sender<Option<StopCause>>,
    task: Option<JoinHandle<()>>,
}

struct Inner {
    store: Store,
    data_dir: PathBuf,
    endpoint: String,
    gpus: GpuPool,
    running: Mutex<HashMap<String, Running>>,
}

/// The experiments a server runs.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// A supervisor over `store`; trial logs go under `data_dir/logs`, trials push to `endpoint`.
    pub fn new(store: Store, data_dir: PathBuf, endpoint: String, gpus: GpuPool) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                store,
                data_dir,
                endpoint,
                gpus,
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.inner
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks that an experiment can run on this machine (GPUs, collector).
    pub fn admit(&self, checked: &CheckedExperiment) -> Result<(), SuperviseError> {
        admit(checked, &self.inner.gpus, false)
            .map(|_| ())
            .map_err(SuperviseError::Refused)
    }

    /// True while the experiment's driver runs.
    pub fn is_running(&self, experiment: &str) -> bool {
        self.running().contains_key(experiment)
    }

    /// Starts running a stored experiment.
    pub fn start(
        &self,
        checked: CheckedExperiment,
        record: ExperimentRecord,
    ) -> Result<(), SuperviseError> {
        let container =
            admit(&checked, &self.inner.gpus, false).map_err(SuperviseError::Refused)?;
        let log_dir = self.inner.data_dir.join("logs").join(&record.name);
        std::fs::create_dir_all(&log_dir).map_err(|e| {
            SuperviseError::Refused(format!(
                "cannot create the log directory {}: {e}",
                log_dir.display()
            ))
        })?;
        let engine =
            sextant_suggestion::configure(&checked.algorithm.name, &checked.algorithm.settings)
                .map_err(|e| SuperviseError::Refused(format!("spec.algorithm: {e}")))?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let runtime = LocalRuntime::new(
            LocalConfig {
                work_dir: record.work_dir.clone(),
                log_dir: log_dir.clone(),
                primary_container: checked
                    .template
                    .primary_container_name
                    .clone()
                    .unwrap_or_default(),
                metric_names: checked.objective.metric_names(),
                collector: checked.collector.clone(),
                experiment: record.name.clone(),
                endpoint: Some(self.inner.endpoint.clone()),
            },
            self.inner.gpus.clone(),
            container.gpus,
            events_tx,
        );
        self.start_with(checked, record, engine, runtime, events_rx, log_dir)
    }

    /// Starts a driver for a stored experiment on any runtime (the Kubernetes controller's
    /// entry): `events` is the receiving end of the channel `runtime` reports to. Pushed points
    /// and trial stops reach it as they reach [`Supervisor::start`]'s drivers.
    pub fn start_with<R>(
        &self,
        checked: CheckedExperiment,
        record: ExperimentRecord,
        engine: ConfiguredEngine,
        runtime: R,
        events_rx: mpsc::UnboundedReceiver<RuntimeEvent>,
        log_dir: PathBuf,
    ) -> Result<(), SuperviseError>
    where
        R: TrialRuntime + Send + 'static,
    {
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (stop_tx, mut stop_rx) = watch::channel(None);
        let name = record.name.clone();
        let task_name = name.clone();
        let store = self.inner.store.clone();
        let supervisor = self.clone();
        let mut running = self.running();
        if running.contains_key(&name) {
            return Err(SuperviseError::Refused(format!(
                "experiment {name} is already running"
            )));
        }
        let task = tokio::spawn(async move {
            // A shutdown (not a stop) leaves trials that outlive the driver running, to be picked
            // up when the server starts again.
            let leave_running = Arc::new(AtomicBool::new(false));
            let leave = leave_running.clone();
            let shutdown = async move {
                let cause = loop {
                    if let Some(cause) = *stop_rx.borrow_and_update() {
                        break cause;
                    }
                    if stop_rx.changed().await.is_err() {
                        break StopCause::Shutdown;
                    }
                };
                leave.store(cause == StopCause::Shutdown, Ordering::SeqCst);
                match cause {
                    StopCause::Request => "stopped on request: the experiment was stopped".into(),
                    StopCause::Shutdown => {
                        "interrupted: the server stopped; it resumes the experiment when it starts again".into()
                    }
                }
            };
            let result =
                match Driver::new(&store, checked, record, engine, runtime, events_rx, log_dir) {
                    Ok(driver) => {
                        driver
                            .with_commands(commands_rx)
                            .with_leave_running(leave_running)
                            .run(shutdown, &mut LogReporter)
                            .await
                    }
                    Err(e) => Err(e),
                };
            supervisor.finished(&task_name, result);
        });
        running.insert(
            name,
            Running {
                commands: commands_tx,
                stop: stop_tx,
                task: Some(task),
            },
        );
        Ok(())
    }

    /// Routes pushed points and trial stops to a driver run elsewhere (`sextant run` drives its
    /// experiment itself and serves the API beside it). It cannot be stopped through here.
    pub fn attach(&self, experiment: &str, commands: mpsc::UnboundedSender<DriverCommand>) {
        let (stop, _) = watch::channel(None);
        self.running().insert(
            experiment.to_string(),
            Running {
                commands,
                stop,
                task: None,
            },
        );
    }

    /// Called by a driver task as it ends.
    fn finished(
        &self,
        name: &str,
        result: Result<(RunOutcome, ExperimentRecord), super::driver::DriverError>,
    ) {
        let cause = self.running().get(name).and_then(|r| *r.stop.borrow());
        let store = &self.inner.store;
        match result {
            Ok((RunOutcome::Completed(completion), record)) => {
                tracing::info!(
                    experiment = name,
                    reason = completion.reason(),
                    "experiment completed: {}",
                    record.message
                );
            }
            Ok((RunOutcome::Interrupted, mut record)) => {
                if cause == Some(StopCause::Request) {
                    record.phase = ExperimentPhase::Stopped;
                    record.reason = STOPPED_REASON.to_string();
                    record.message = "Experiment was stopped on request".to_string();
                    record.completed = Some(Timestamp::now());
                    if let Err(e) = store.put_experiment(&record).and_then(|()| store.flush()) {
                        tracing::error!(experiment = name, "cannot record the stop: {e}");
                    }
                }
            }
            Err(error) => {
                // A template that cannot start would fail the same way after every restart: the
                // experiment ends Failed with the reason, instead of being retried forever.
                tracing::error!(experiment = name, "experiment failed: {error}");
                if let Ok(Some(mut record)) = store.experiment(name) {
                    record.phase = ExperimentPhase::Failed;
                    record.reason = super::policy::reason::FAILED.to_string();
                    record.message = error.to_string();
                    record.completed = Some(Timestamp::now());
                    if let Err(e) = store.put_experiment(&record).and_then(|()| store.flush()) {
                        tracing::error!(experiment = name, "cannot record the failure: {e}");
                    }
                }
            }
        }
        // The entry goes when the task ends; `stop` may have taken the handle already.
        self.running().remove(name);
    }

    /// Stops a running experiment: its trials are stopped (Killed) and it ends Stopped. Returns
    /// false when it was not running.
    pub async fn stop(&self, experiment: &str) -> bool {
        self.stop_with(experiment, StopCause::Request).await
    }

    async fn stop_with(&self, experiment: &str, cause: StopCause) -> bool {
        let task = {
            let mut running = self.running();
            let Some(entry) = running.get_mut(experiment) else {
                return false;
            };
            let _ = entry.stop.send(Some(cause));
            entry.task.take()
        };
        if let Some(task) = task {
            let _ = task.await;
        } else if self
            .running()
            .get(experiment)
            .is_some_and(|r| r.stop.receiver_count() == 0)
        {
            // An attached driver (run elsewhere) does not listen for stops.
            return false;
        } else {
            // Someone else is already waiting for it; wait until the entry is gone.
            while self.is_running(experiment) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        true
    }

    /// Stops every running experiment (server shutdown); they resume on the next start.
    pub async fn shutdown(&self) {
        let names: Vec<String> = self.running().keys().cloned().collect();
        for name in names {
            self.stop_with(&name, StopCause::Shutdown).await;
        }
    }

    /// Stops one trial of a running experiment.
    pub async fn stop_trial(
        &self,
        experiment: &str,
        trial: &str,
    ) -> Result<TrialRecord, SuperviseError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .running()
            .get(experiment)
            .map(|r| {
                r.commands.send(DriverCommand::StopTrial {
                    trial: trial.to_string(),
                    reply,
                })
            })
            .is_some_and(|r| r.is_ok());
        if !sent {
            return Err(SuperviseError::NotStoppable(format!(
                "experiment {experiment} is not running, so none of its trials is"
            )));
        }
        answer
            .await
            .map_err(|_| {
                SuperviseError::NotStoppable(format!("experiment {experiment} has just ended"))
            })?
            .map_err(SuperviseError::NotStoppable)
    }

    /// Tells the experiment's driver about points a trial pushed (already durable). Without a
    /// driver, a finished trial's summary is brought up to date here.
    pub fn pushed(
        &self,
        trial: &TrialRecord,
        points: Vec<Observation>,
    ) -> Result<(), SuperviseError> {
        let delivered = self.running().get(&trial.experiment).is_some_and(|r| {
            r.commands
                .send(DriverCommand::Pushed {
                    trial: trial.name.clone(),
                    points,
                })
                .is_ok()
        });
        if delivered || trial.state.is_active() {
            // An active trial with no driver is one the next run marks Killed; its points stay.
            return Ok(());
        }
        let store = &self.inner.store;
        let Some(record) = store.experiment(&trial.experiment)? else {
            return Ok(());
        };
        let Ok(checked) = checked_from_record(&record) else {
            return Ok(());
        };
        let mut trial = trial.clone();
        metrics::refresh_finished_trial(store, &checked.objective, &mut trial)?;
        Ok(())
    }

    /// Where an experiment's trial logs go.
    pub fn log_dir(&self, experiment: &str) -> PathBuf {
        self.inner.data_dir.join("logs").join(experiment)
    }

    /// Removes an experiment's trial logs (after it was deleted).
    pub fn remove_logs(&self, experiment: &str) {
        let logs = self.inner.data_dir.join("logs").join(experiment);
        if let Err(e) = std::fs::remove_dir_all(&logs)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", logs.display());
        }
    }

    /// Resumes every experiment an earlier server left unfinished. Returns how many.
    pub fn resume_all(&self) -> Result<usize, SuperviseError> {
        let mut resumed = 0;
        for record in self.inner.store.experiments()? {
            if record.phase.is_finished() {
                continue;
            }
            let name = record.name.clone();
            match checked_from_record(&record)
                .map_err(SuperviseError::Refused)
                .and_then(|checked| self.start(checked, record))
            {
                Ok(()) => resumed += 1,
                Err(e) => tracing::error!(experiment = name, "cannot resume: {e}"),
            }
        }
        Ok(resumed)
    }
}

/// The checked form of a stored experiment (it was valid when stored; this version re-checks).
pub fn checked_from_record(record: &ExperimentRecord) -> Result<CheckedExperiment, String> {
    let text = serde_json::to_string(&record.experiment).map_err(|e| e.to_string())?;
    spec::check(&text).map_err(|e| format!("the stored spec no longer validates: {e}"))
}

/// Progress of served experiments goes to the server's log.
struct LogReporter;

impl Reporter for LogReporter {
    fn note(&mut self, message: &str) {
        tracing::info!("{message}");
    }

    fn trial_started(&mut self, trial: &TrialRecord, _progress: &Progress<'_>) {
        tracing::info!(trial = trial.name, state = %trial.state, "trial started");
    }

    fn trial_finished(&mut self, trial: &TrialRecord, _progress: &Progress<'_>) {
        tracing::info!(trial = trial.name, state = %trial.state, objective = ?trial.objective, "trial finished: {}", trial.message);
    }

    fn tick(&mut self, _progress: &Progress<'_>) {}
}

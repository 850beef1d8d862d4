//! Where the read commands get their records: the local store, or a `sextant serve` server
//! (`--server URL`). Both hand back the types the API serves ([`ExperimentView`],
//! [`ExperimentRecord`], [`TrialRecord`], [`Observation`]), so each command fetches through this
//! and renders the same way whatever the source; "not found" reads the same from both, naming
//! the place that was looked in.

use std::path::Path;

use sextant_collector::Observation;

use super::client::{AdminToken, ClientError, ServerClient};
use super::get::{load_experiment, unknown_experiment};
use super::{CliError, open_store};
use crate::store::{ExperimentRecord, Store, TrialRecord, TrialState};
use crate::view::ExperimentView;

/// The local store or a server.
#[derive(Debug)]
pub enum RecordSource {
    /// The store in the data directory.
    Local(Store),
    /// A `sextant serve` server.
    Server(ServerClient),
}

impl RecordSource {
    /// The server at `server` when given, else the store in `data_dir`.
    pub fn open(server: Option<&str>, data_dir: &Path) -> Result<RecordSource, CliError> {
        match server {
            Some(url) => Ok(RecordSource::Server(ServerClient::new(
                url,
                AdminToken::find(data_dir)?,
            )?)),
            None => Ok(RecordSource::Local(open_store(data_dir)?)),
        }
    }

    /// Where records were looked for: `in this data directory` / `on server URL`.
    pub fn place(&self) -> String {
        match self {
            RecordSource::Local(_) => "in this data directory".to_string(),
            RecordSource::Server(client) => format!("on server {}", client.base()),
        }
    }

    /// Every experiment's view, by name.
    pub fn experiment_views(&self) -> Result<Vec<ExperimentView>, CliError> {
        match self {
            RecordSource::Local(store) => {
                let mut views = Vec::new();
                for record in store.experiments()? {
                    let trials = store.trials(&record.name)?;
                    views.push(ExperimentView::new(&record, &trials));
                }
                Ok(views)
            }
            RecordSource::Server(client) => Ok(client.experiments()?),
        }
    }

    /// One experiment and its view, or an error listing the known ones.
    pub fn experiment(&self, name: &str) -> Result<(ExperimentRecord, ExperimentView), CliError> {
        match self {
            RecordSource::Local(store) => {
                let record = load_experiment(store, name)?;
                let trials = store.trials(&record.name)?;
                let view = ExperimentView::new(&record, &trials);
                Ok((record, view))
            }
            RecordSource::Server(client) => {
                remote_experiment(client, name).map(|detail| (detail.experiment, detail.status))
            }
        }
    }

    /// An experiment's trials in creation order, only those in `state` when given.
    pub fn trials(
        &self,
        experiment: &str,
        state: Option<TrialState>,
    ) -> Result<Vec<TrialRecord>, CliError> {
        match self {
            RecordSource::Local(store) => Ok(store
                .trials(experiment)?
                .into_iter()
                .filter(|t| state.is_none_or(|s| t.state == s))
                .collect()),
            RecordSource::Server(client) => match client.trials(experiment, state) {
                Err(e) if e.not_found().is_some() => {
                    Err(remote_unknown_experiment(client, experiment))
                }
                other => Ok(other?),
            },
        }
    }

    /// One trial by name.
    pub fn trial(&self, name: &str) -> Result<TrialRecord, CliError> {
        match self {
            RecordSource::Local(store) => {
                store.trial(name)?.ok_or_else(|| self.unknown_trial(name))
            }
            RecordSource::Server(client) => {
                let experiment = experiment_of(name).ok_or_else(|| self.unknown_trial(name))?;
                match client.trial(experiment, name) {
                    Err(e) if e.not_found().is_some() => Err(self.unknown_trial(name)),
                    other => Ok(other?),
                }
            }
        }
    }

    /// A trial's observation points, ordered by metric then step; only `metric` when given.
    pub fn observations(
        &self,
        trial: &str,
        metric: Option<&str>,
    ) -> Result<Vec<Observation>, CliError> {
        match self {
            RecordSource::Local(store) => {
                let record = store
                    .trial(trial)?
                    .ok_or_else(|| self.unknown_trial(trial))?;
                Ok(store.observations(record.uid, metric)?)
            }
            RecordSource::Server(client) => {
                let experiment = experiment_of(trial).ok_or_else(|| self.unknown_trial(trial))?;
                match client.observations(experiment, trial, metric) {
                    // A 404 may be about the metric rather than the trial: locally an unknown
                    // metric is simply an empty series, so ask whether the trial exists.
                    Err(e) if e.not_found().is_some() => {
                        self.trial(trial)?;
                        Ok(Vec::new())
                    }
                    other => Ok(other?),
                }
            }
        }
    }

    fn unknown_trial(&self, name: &str) -> CliError {
        CliError::input(format!(
            "no trial {name:?} {}; list them with `sextant get trials EXPERIMENT`",
            self.place()
        ))
    }
}

/// The experiment a trial belongs to, from its name (`{experiment}-{NNNN}`).
pub fn experiment_of(trial: &str) -> Option<&str> {
    trial
        .rsplit_once('-')
        .map(|(experiment, _)| experiment)
        .filter(|e| !e.is_empty())
}

/// `GET /v1/experiments/{name}`; a 404 lists the experiments the server has.
pub(crate) fn remote_experiment(
    client: &ServerClient,
    name: &str,
) -> Result<super::client::ExperimentDetail, CliError> {
    match client.experiment(name) {
        Err(e) if e.not_found().is_some() => Err(remote_unknown_experiment(client, name)),
        other => Ok(other?),
    }
}

/// `no experiment "x" on server URL; known: ...`, asking the server which ones it has.
pub(crate) fn remote_unknown_experiment(client: &ServerClient, name: &str) -> CliError {
    let known: Result<Vec<String>, ClientError> = client
        .experiments()
        .map(|views| views.into_iter().map(|v| v.name).collect());
    unknown_experiment(
        name,
        &format!("on server {}", client.base()),
        known.unwrap_or_default(),
    )
}

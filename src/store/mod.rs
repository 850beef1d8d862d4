//! The embedded store: experiments, trials, observation points and engine state in sled.
//!
//! Trees:
//! - `experiments`: name → [`ExperimentRecord`] (JSON)
//! - `trials`: `experiment \0 trial` → [`TrialRecord`] (JSON); one experiment's trials are one prefix scan
//! - `trial_index`: trial name → experiment name, so a trial is found by its name alone
//! - `metric_ids` / `metric_names`: metric name ↔ u32, so observation keys stay short
//! - `observations`: `trial uid (u64 BE) | metric id (u32 BE) | step (i64, sign-flipped, BE)` →
//!   `value (f64 BE) | timestamp (i64 ns BE)`. Big-endian keys sort numerically, so one trial's
//!   series of one metric is one ordered range scan; a repeated (trial, metric, step) overwrites
//!   itself, which makes re-delivered points idempotent.
//! - `engine_state`: experiment name → the engine's saved state (JSON)
//! - `trial_summaries`: `experiment \0 index (u64 BE)` → state, objective and name of a trial
//!   ([`TrialSummary`], a few bytes), written with every trial, so listing, counting and sorting
//!   10,000 trials decodes no JSON
//! - `trial_tokens` / `token_owners`: trial name ↔ the token that trial pushes its metrics with
//!   (never served; the reverse map tells "another trial's token" from "no token at all")
//!
//! sled writes are durable only after a flush (it fsyncs in the background every 500 ms otherwise),
//! so callers call [`Store::flush`] before they report anything as done.

pub mod records;

use std::path::Path;

use jiff::Timestamp;
use sextant_collector::Observation;

pub use records::{
    ExperimentPhase, ExperimentRecord, MetricSummary, TrialEvent, TrialRecord, TrialState,
};

/// sled's page cache. Its 1 GiB default is far more than a tuning run needs.
const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// How long [`Store::open`] waits for a lock that is being released.
const LOCK_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_millis(1500);
/// How often it tries again meanwhile.
const LOCK_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(dir.join("db"))
        .cache_capacity(CACHE_CAPACITY_BYTES)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked(dir.display().to_string())
            }
            sled::Error::Io(io) if io.to_string().contains("lock") => {
                StoreError::Locked(dir.display().to_string())
            }
            other => StoreError::Sled(other),
        })
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (IO, corruption, or the database is locked by another process).
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A record could not be encoded or decoded.
    #[error("store record {key:?}: {source}")]
    Record {
        /// The key.
        key: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A stored value is not what this version writes.
    #[error("store: unreadable {0}")]
    Corrupt(String),
    /// The data directory is in use by another `sextant` process.
    #[error(
        "the data directory {0} is in use by another sextant process; wait for it to finish or use another --data-dir"
    )]
    Locked(String),
}

/// The store.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    experiments: sled::Tree,
    trials: sled::Tree,
    trial_index: sled::Tree,
    metric_ids: sled::Tree,
    metric_names: sled::Tree,
    observations: sled::Tree,
    engine_state: sled::Tree,
    trial_summaries: sled::Tree,
    trial_tokens: sled::Tree,
    token_owners: sled::Tree,
    /// Metric name → id, so pushing a point costs no lookup of its metric in sled.
    metric_cache: std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, [u8; 4]>>>,
}

/// What listing and ranking trials needs of each, kept beside the full record.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSummary {
    /// The trial's name.
    pub name: String,
    /// Its creation index.
    pub index: u64,
    /// Its state.
    pub state: TrialState,
    /// Its objective value, once it has one.
    pub objective: Option<f64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        // sled releases its file lock from a background thread after the last handle is
        // dropped, so a store reopened right after it was closed (in the same process) can find
        // the lock still held for a moment: retry briefly before calling it in use.
        let deadline = std::time::Instant::now() + LOCK_RETRY_WINDOW;
        let db = loop {
            match open_db(dir) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY_INTERVAL);
                }
                other => break other?,
            }
        };
        let store = Store {
            experiments: db.open_tree("experiments")?,
            trials: db.open_tree("trials")?,
            trial_index: db.open_tree("trial_index")?,
            metric_ids: db.open_tree("metric_ids")?,
            metric_names: db.open_tree("metric_names")?,
            observations: db.open_tree("observations")?,
            engine_state: db.open_tree("engine_state")?,
            trial_summaries: db.open_tree("trial_summaries")?,
            trial_tokens: db.open_tree("trial_tokens")?,
            token_owners: db.open_tree("token_owners")?,
            metric_cache: Default::default(),
            db,
        };
        store.backfill_trial_summaries()?;
        Ok(store)
    }

    /// Stores written before trial summaries existed get them from their trial records once.
    fn backfill_trial_summaries(&self) -> Result<(), StoreError> {
        if !self.trial_summaries.is_empty() || self.trials.is_empty() {
            return Ok(());
        }
        for kv in self.trials.iter() {
            let (key, value) = kv?;
            let record: TrialRecord = decode(&String::from_utf8_lossy(&key), &value)?;
            self.trial_summaries.insert(
                summary_key(&record.experiment, record.index),
                encode_summary(&record),
            )?;
        }
        self.flush()
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A new store-wide id (monotonic, survives restarts).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    // --- experiments ---

    /// Inserts or replaces an experiment.
    pub fn put_experiment(&self, record: &ExperimentRecord) -> Result<(), StoreError> {
        self.experiments
            .insert(record.name.as_bytes(), encode(&record.name, record)?)?;
        Ok(())
    }

    /// True when an experiment of that name is stored (without decoding it).
    pub fn has_experiment(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.experiments.contains_key(name.as_bytes())?)
    }

    /// One experiment.
    pub fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>, StoreError> {
        self.experiments
            .get(name.as_bytes())?
            .map(|v| decode(name, &v))
            .transpose()
    }

    /// All experiments, by name.
    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>, StoreError> {
        self.experiments
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    /// Deletes an experiment with its trials, observations and engine state.
    pub fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        let trials = self.trials(name)?;
        for trial in &trials {
            self.delete_observations(trial.uid)?;
            self.trial_index.remove(trial.name.as_bytes())?;
            if let Some(token) = self.trial_tokens.remove(trial.name.as_bytes())? {
                self.token_owners.remove(token)?;
            }
            self.trial_summaries
                .remove(summary_key(name, trial.index))?;
            self.trials.remove(trial_key(name, &trial.name))?;
        }
        self.engine_state.remove(name.as_bytes())?;
        let existed = self.experiments.remove(name.as_bytes())?.is_some();
        Ok(existed)
    }

    // --- trials ---

    /// Inserts or replaces a trial.
    pub fn put_trial(&self, record: &TrialRecord) -> Result<(), StoreError> {
        self.trials.insert(
            trial_key(&record.experiment, &record.name),
            encode(&record.name, record)?,
        )?;
        self.trial_index
            .insert(record.name.as_bytes(), record.experiment.as_bytes())?;
        self.trial_summaries.insert(
            summary_key(&record.experiment, record.index),
            encode_summary(record),
        )?;
        Ok(())
    }

    /// An experiment's trial summaries, in creation order.
    pub fn trial_summaries(&self, experiment: &str) -> Result<Vec<TrialSummary>, StoreError> {
        let mut prefix = experiment.as_bytes().to_vec();
        prefix.push(0);
        let mut summaries = Vec::new();
        for kv in self.trial_summaries.scan_prefix(&prefix) {
            let (key, value) = kv?;
            let index = key
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or_default();
            summaries.push(decode_summary(index, &value).ok_or_else(|| {
                StoreError::Corrupt(format!("trial summary {index} of experiment {experiment}"))
            })?);
        }
        Ok(summaries)
    }

    /// Trials of an experiment by name, in the order asked; missing ones are left out.
    pub fn trials_named(
        &self,
        experiment: &str,
        names: &[&str],
    ) -> Result<Vec<TrialRecord>, StoreError> {
        let mut trials = Vec::with_capacity(names.len());
        for name in names {
            if let Some(bytes) = self.trials.get(trial_key(experiment, name))? {
                trials.push(decode(name, &bytes)?);
            }
        }
        Ok(trials)
    }

    /// Records the token a trial pushes its metrics with.
    pub fn put_trial_token(&self, trial: &str, token: &str) -> Result<(), StoreError> {
        self.trial_tokens
            .insert(trial.as_bytes(), token.as_bytes())?;
        self.token_owners
            .insert(token.as_bytes(), trial.as_bytes())?;
        Ok(())
    }

    /// The trial a token belongs to, if any.
    pub fn token_owner(&self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .token_owners
            .get(token.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The token of a trial, if it has one.
    pub fn trial_token(&self, trial: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .trial_tokens
            .get(trial.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// One trial, by its name.
    pub fn trial(&self, name: &str) -> Result<Option<TrialRecord>, StoreError> {
        let Some(experiment) = self.trial_index.get(name.as_bytes())? else {
            return Ok(None);
        };
        let experiment = String::from_utf8_lossy(&experiment).into_owned();
        self.trials
            .get(trial_key(&experiment, name))?
            .map(|v| decode(name, &v))
            .transpose()
    }

    /// An experiment's trials, in creation order.
    pub fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>, StoreError> {
        let mut prefix = experiment.as_bytes().to_vec();
        prefix.push(0);
        let mut trials = self
            .trials
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                decode::<TrialRecord>(&String::from_utf8_lossy(&k), &v)
            })
            .collect::<Result<Vec<_>, _>>()?;
        trials.sort_by_key(|t| t.index);
        Ok(trials)
    }

    // --- observations ---

    /// Stores observation points of one trial.
    pub fn put_observations(
        &self,
        trial_uid: u64,
        points: &[Observation],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for point in points {
            let metric = self.metric_id(&point.metric_name)?;
            let mut value = [0u8; 16];
            value[..8].copy_from_slice(&point.value.to_be_bytes());
            let nanos = i64::try_from(point.timestamp.as_nanosecond()).unwrap_or(i64::MAX);
            value[8..].copy_from_slice(&nanos.to_be_bytes());
            batch.insert(
                &observation_key(trial_uid, metric, point.step)[..],
                &value[..],
            );
        }
        self.observations.apply_batch(batch)?;
        Ok(())
    }

    /// One trial's points, ordered by metric then step; only `metric` when given.
    pub fn observations(
        &self,
        trial_uid: u64,
        metric: Option<&str>,
    ) -> Result<Vec<Observation>, StoreError> {
        let prefix = match metric {
            Some(name) => match self.metric_ids.get(name.as_bytes())? {
                Some(id) => {
                    let mut p = trial_uid.to_be_bytes().to_vec();
                    p.extend_from_slice(&id);
                    p
                }
                None => return Ok(Vec::new()),
            },
            None => trial_uid.to_be_bytes().to_vec(),
        };
        let mut names: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
        let mut points = Vec::new();
        for kv in self.observations.scan_prefix(prefix) {
            let (key, value) = kv?;
            let (metric_id, step) = parse_observation_key(&key);
            let metric_name = match names.get(&metric_id) {
                Some(n) => n.clone(),
                None => {
                    let n = self
                        .metric_names
                        .get(metric_id.to_be_bytes())?
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_else(|| format!("metric-{metric_id}"));
                    names.insert(metric_id, n.clone());
                    n
                }
            };
            let number = f64::from_be_bytes(value[..8].try_into().unwrap_or([0; 8]));
            let nanos = i64::from_be_bytes(value[8..16].try_into().unwrap_or([0; 8]));
            let timestamp =
                Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::UNIX_EPOCH);
            points.push(Observation {
                metric_name,
                value: number,
                step,
                timestamp,
            });
        }
        Ok(points)
    }

    /// Deletes a trial's observation log (its points), keeping the trial's record and metric
    /// summary, so the experiment's best trial and counts stay as they were (what Katib's
    /// `clean-metrics-in-db` finalizer does when a Trial is deleted). Returns the number of points
    /// removed; an unknown trial has none.
    pub fn delete_trial_observations(&self, trial: &str) -> Result<usize, StoreError> {
        let Some(record) = self.trial(trial)? else {
            return Ok(0);
        };
        let removed = self
            .observations
            .scan_prefix(record.uid.to_be_bytes())
            .count();
        self.delete_observations(record.uid)?;
        Ok(removed)
    }

    fn delete_observations(&self, trial_uid: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in self
            .observations
            .scan_prefix(trial_uid.to_be_bytes())
            .keys()
        {
            batch.remove(key?);
        }
        self.observations.apply_batch(batch)?;
        Ok(())
    }

    fn metric_id(&self, name: &str) -> Result<[u8; 4], StoreError> {
        if let Some(id) = self
            .metric_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(*id);
        }
        let id = self.stored_metric_id(name)?;
        self.metric_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), id);
        Ok(id)
    }

    fn stored_metric_id(&self, name: &str) -> Result<[u8; 4], StoreError> {
        if let Some(id) = self.metric_ids.get(name.as_bytes())? {
            return Ok(id.as_ref().try_into().unwrap_or([0; 4]));
        }
        // Ids come from the database-wide counter; a lost race only wastes a number, the
        // compare-and-swap keeps one id per name.
        let candidate = u32::try_from(self.db.generate_id()? % u64::from(u32::MAX))
            .unwrap_or(0)
            .to_be_bytes();
        match self.metric_ids.compare_and_swap(
            name.as_bytes(),
            None as Option<&[u8]>,
            Some(&candidate[..]),
        )? {
            Ok(()) => {
                self.metric_names.insert(candidate, name.as_bytes())?;
                Ok(candidate)
            }
            Err(existing) => Ok(existing
                .current
                .map(|v| v.as_ref().try_into().unwrap_or([0; 4]))
                .unwrap_or(candidate)),
        }
    }

    // --- engine state ---

    /// Saves an experiment's engine state.
    pub fn put_engine_state(
        &self,
        experiment: &str,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.engine_state
            .insert(experiment.as_bytes(), encode(experiment, state)?)?;
        Ok(())
    }

    /// An experiment's engine state.
    pub fn engine_state(&self, experiment: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.engine_state
            .get(experiment.as_bytes())?
            .map(|v| decode(experiment, &v))
            .transpose()
    }
}

fn trial_key(experiment: &str, trial: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(experiment.len() + trial.len() + 1);
    key.extend_from_slice(experiment.as_bytes());
    key.push(0);
    key.extend_from_slice(trial.as_bytes());
    key
}

fn summary_key(experiment: &str, index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(experiment.len() + 9);
    key.extend_from_slice(experiment.as_bytes());
    key.push(0);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// `state (u8) | has objective (u8) | objective (f64 BE) | name (UTF-8)`.
fn encode_summary(record: &TrialRecord) -> Vec<u8> {
    let mut value = Vec::with_capacity(10 + record.name.len());
    let state = TrialState::ALL
        .iter()
        .position(|s| *s == record.state)
        .unwrap_or_default();
    value.push(u8::try_from(state).unwrap_or_default());
    value.push(u8::from(record.objective.is_some()));
    value.extend_from_slice(&record.objective.unwrap_or_default().to_be_bytes());
    value.extend_from_slice(record.name.as_bytes());
    value
}

fn decode_summary(index: u64, value: &[u8]) -> Option<TrialSummary> {
    let state = *TrialState::ALL.get(usize::from(*value.first()?))?;
    let has_objective = *value.get(1)? == 1;
    let objective = f64::from_be_bytes(value.get(2..10)?.try_into().ok()?);
    let name = String::from_utf8(value.get(10..)?.to_vec()).ok()?;
    Some(TrialSummary {
        name,
        index,
        state,
        objective: has_objective.then_some(objective),
    })
}

/// Flipping the sign bit makes big-endian byte order match numeric order for negative steps too.
fn observation_key(trial_uid: u64, metric: [u8; 4], step: i64) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..8].copy_from_slice(&trial_uid.to_be_bytes());
    key[8..12].copy_from_slice(&metric);
    key[12..].copy_from_slice(&((step as u64) ^ (1 << 63)).to_be_bytes());
    key
}

fn parse_observation_key(key: &[u8]) -> (u32, i64) {
    let metric = u32::from_be_bytes(
        key.get(8..12)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 4]),
    );
    let raw = u64::from_be_bytes(
        key.get(12..20)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 8]),
    );
    (metric, (raw ^ (1 << 63)) as i64)
}

fn encode<T: serde::Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Record {
        key: key.to_string(),
        source,
    })
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Record {
        key: key.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(metric: &str, step: i64, value: f64) -> Observation {
        Observation {
            metric_name: metric.into(),
            value,
            step,
            timestamp: Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    #[test]
    fn observation_keys_sort_by_step_including_negative_steps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put_observations(
                7,
                &[
                    point("loss", 3, 0.3),
                    point("loss", -1, 0.9),
                    point("acc", 0, 0.5),
                    point("loss", 10, 0.1),
                ],
            )
            .unwrap();
        store.put_observations(8, &[point("loss", 0, 5.0)]).unwrap();
        let loss: Vec<(i64, f64)> = store
            .observations(7, Some("loss"))
            .unwrap()
            .iter()
            .map(|p| (p.step, p.value))
            .collect();
        assert_eq!(loss, vec![(-1, 0.9), (3, 0.3), (10, 0.1)]);
        assert_eq!(store.observations(7, None).unwrap().len(), 4);
        assert_eq!(store.observations(7, Some("missing")).unwrap(), vec![]);
    }

    fn trial(
        experiment: &str,
        index: u64,
        state: TrialState,
        objective: Option<f64>,
    ) -> TrialRecord {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        TrialRecord {
            name: format!("{experiment}-{:04}", index + 1),
            experiment: experiment.into(),
            index,
            uid: index,
            assignments: vec![],
            state,
            reason: String::new(),
            message: String::new(),
            events: vec![],
            created: now,
            started: None,
            finished: None,
            log_path: "x.log".into(),
            pid: None,
            exit_code: None,
            gpus: vec![],
            metrics: vec![],
            objective,
        }
    }

    #[test]
    fn deleting_a_trials_observation_log_keeps_its_record_and_the_other_trials_points() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // uid 1 and uid 256 share no prefix byte-wise only with whole 8-byte prefixes.
        let mut first = trial("e", 1, TrialState::Succeeded, Some(0.5));
        first.uid = 1;
        let mut other = trial("e", 2, TrialState::Succeeded, Some(0.7));
        other.uid = 256;
        store.put_trial(&first).unwrap();
        store.put_trial(&other).unwrap();
        store
            .put_observations(1, &[point("loss", 0, 1.0), point("loss", 1, 0.5)])
            .unwrap();
        store
            .put_observations(256, &[point("loss", 0, 2.0)])
            .unwrap();
        assert_eq!(store.delete_trial_observations(&first.name).unwrap(), 2);
        assert!(store.observations(1, None).unwrap().is_empty());
        assert_eq!(store.observations(256, None).unwrap().len(), 1);
        assert_eq!(store.trial(&first.name).unwrap(), Some(first.clone()));
        assert_eq!(store.delete_trial_observations(&first.name).unwrap(), 0);
        assert_eq!(store.delete_trial_observations("no-such-trial").unwrap(), 0);
    }

    #[test]
    fn trial_summaries_follow_every_write_in_index_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Index 300 sorts after 2 only with big-endian keys.
        store
            .put_trial(&trial("e", 300, TrialState::Running, None))
            .unwrap();
        store
            .put_trial(&trial("e", 2, TrialState::Succeeded, Some(-0.5)))
            .unwrap();
        store
            .put_trial(&trial("e-x", 0, TrialState::Failed, None))
            .unwrap();
        store
            .put_trial(&trial("e", 300, TrialState::Succeeded, Some(0.25)))
            .unwrap();
        let summaries = store.trial_summaries("e").unwrap();
        assert_eq!(
            summaries,
            vec![
                TrialSummary {
                    name: "e-0003".into(),
                    index: 2,
                    state: TrialState::Succeeded,
                    objective: Some(-0.5)
                },
                TrialSummary {
                    name: "e-0301".into(),
                    index: 300,
                    state: TrialState::Succeeded,
                    objective: Some(0.25)
                },
            ]
        );
        store.delete_experiment("e").unwrap();
        assert!(store.trial_summaries("e").unwrap().is_empty());
        assert_eq!(store.trial_summaries("e-x").unwrap().len(), 1);
    }

    #[test]
    fn a_store_from_before_trial_summaries_gets_them_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .put_trial(&trial("old", 0, TrialState::Succeeded, Some(0.9)))
                .unwrap();
            store
                .put_trial(&trial("old", 1, TrialState::Failed, None))
                .unwrap();
            // What an older version left: records without summaries.
            store.trial_summaries.clear().unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let summaries = store.trial_summaries("old").unwrap();
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[0].objective, Some(0.9));
        assert_eq!(summaries[1].state, TrialState::Failed);
    }

    #[test]
    fn tokens_map_both_ways_and_go_with_their_experiment() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put_trial(&trial("e", 0, TrialState::Running, None))
            .unwrap();
        store.put_trial_token("e-0001", "secret").unwrap();
        assert_eq!(
            store.trial_token("e-0001").unwrap().as_deref(),
            Some("secret")
        );
        assert_eq!(
            store.token_owner("secret").unwrap().as_deref(),
            Some("e-0001")
        );
        store.delete_experiment("e").unwrap();
        assert_eq!(store.trial_token("e-0001").unwrap(), None);
        assert_eq!(store.token_owner("secret").unwrap(), None);
    }

    #[test]
    fn repeated_point_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_observations(1, &[point("loss", 2, 0.5)]).unwrap();
        store.put_observations(1, &[point("loss", 2, 0.5)]).unwrap();
        assert_eq!(store.observations(1, None).unwrap().len(), 1);
    }

    #[test]
    fn flushed_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .put_engine_state("exp", &serde_json::json!({"next": 4}))
                .unwrap();
            store
                .put_observations(3, &[point("loss", 1, 0.25)])
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.engine_state("exp").unwrap(),
            Some(serde_json::json!({"next": 4}))
        );
        assert_eq!(store.observations(3, Some("loss")).unwrap()[0].value, 0.25);
    }

    #[test]
    fn open_waits_for_a_lock_that_is_being_released() {
        // Regression: sled releases its lock from a background thread after the last handle is
        // dropped, so reopening right after closing sometimes failed as "in use" (seen as an
        // intermittent failure of `flushed_data_survives_reopen` under a parallel test run).
        // Here the lock is released 200 ms into the second open, deterministically.
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(first);
        });
        let second = Store::open(dir.path());
        releaser.join().unwrap();
        assert!(second.is_ok(), "{:?}", second.err());
    }

    #[test]
    fn second_open_of_the_same_directory_says_it_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        // sled locks with flock: a second open in the same process fails the same way a second
        // process does.
        match Store::open(dir.path()) {
            Err(StoreError::Locked(_)) => {}
            other => panic!("expected Locked, got {other:?}"),
        }
    }
}

//! Temp data directories, experiment files and a `sextant` command builder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary workspace: a data directory and a place for experiment files.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a file into the workspace and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// `sextant --data-dir <workspace data> ARGS`.
    pub fn sextant(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("SEXTANT_DATA_DIR");
        command
    }

    /// Runs `sextant ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.sextant().args(args).output().expect("run sextant")
    }

    /// Runs a read command with `-o json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "sextant {all:?} failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("bad JSON from {all:?}: {e}\n{}", text(&out.stdout)))
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The pieces of a test experiment that tests vary.
pub struct ExperimentFile<'a> {
    pub name: &'a str,
    pub algorithm: &'a str,
    pub settings: &'a str,
    pub objective: &'a str,
    pub parameters: &'a str,
    pub trial_parameters: &'a str,
    pub command: &'a str,
    pub max_trials: u32,
    pub parallel: u32,
    pub max_failed: Option<u32>,
    pub extra_container: &'a str,
    /// `spec.metricsCollectorSpec` as YAML flow text (e.g. `{collector: {kind: Push}}`); none
    /// when empty.
    pub metrics_collector: &'a str,
}

impl Default for ExperimentFile<'_> {
    fn default() -> Self {
        ExperimentFile {
            name: "test",
            algorithm: "random",
            settings: "[{name: random_state, value: \"7\"}]",
            objective: "{type: minimize, objectiveMetricName: loss}",
            parameters: "[{name: x, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}]",
            trial_parameters: "[{name: x, reference: x}]",
            command: "[sh, -c, 'echo \"epoch=1 loss=${trialParameters.x}\"']",
            max_trials: 4,
            parallel: 2,
            max_failed: None,
            extra_container: "",
            metrics_collector: "",
        }
    }
}

impl ExperimentFile<'_> {
    pub fn yaml(&self) -> String {
        let max_failed = self
            .max_failed
            .map(|n| format!("  maxFailedTrialCount: {n}\n"))
            .unwrap_or_default();
        let collector = if self.metrics_collector.is_empty() {
            String::new()
        } else {
            format!("  metricsCollectorSpec: {}\n", self.metrics_collector)
        };
        format!(
            r#"---
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
  namespace: kubeflow
spec:
  objective: {objective}
  algorithm:
    algorithmName: {algorithm}
    algorithmSettings: {settings}
  maxTrialCount: {max_trials}
  parallelTrialCount: {parallel}
{max_failed}{collector}  parameters: {parameters}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters: {trial_parameters}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training-container
                image: docker.io/example/trainer:latest
                command: {command}
{extra_container}"#,
            name = self.name,
            objective = self.objective,
            algorithm = self.algorithm,
            settings = self.settings,
            max_trials = self.max_trials,
            parallel = self.parallel,
            parameters = self.parameters,
            trial_parameters = self.trial_parameters,
            command = self.command,
            extra_container = self.extra_container,
        )
    }
}

/// Trials of an experiment as JSON records.
pub fn trials(ws: &Workspace, experiment: &str) -> Vec<serde_json::Value> {
    ws.json(&["get", "trials", experiment])
        .as_array()
        .expect("array")
        .clone()
}

pub fn states(trials: &[serde_json::Value]) -> Vec<String> {
    trials
        .iter()
        .map(|t| t["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn count(trials: &[serde_json::Value], state: &str) -> usize {
    trials.iter().filter(|t| t["state"] == state).count()
}

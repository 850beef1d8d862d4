//! `sextant render FILE`: the Kubernetes workload the controller would create for a trial of an
//! Experiment, metrics collector included, without a cluster.
//!
//! The trial's values come from the configured engine asked as the controller asks it for the
//! experiment's first batch: the same seed (`random_state`, else derived from the name), the same
//! batch size (the policy's decision with no trial yet), no history. Later trials depend on how
//! earlier ones did, so only the first batch can be shown.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sextant_algorithms::SuggestRequest;
use sextant_suggestion::seed_from_name;

use super::CliError;
use super::output::{OutputFormat, print_structured};
use crate::controller::driver::trial_name;
use crate::controller::policy::{self, Decision};
use crate::runtime::kubernetes::render::render_workload;
use crate::runtime::kubernetes::{ClusterSettings, DEFAULT_COLLECTOR_IMAGE, DEFAULT_ENDPOINT};
use crate::spec::DEFAULT_NAMESPACE;
use crate::spec::template::TrialIdentity;
use crate::spec::{self, CheckedExperiment, ParameterAssignment};

/// Arguments of `sextant render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The Experiment file (Katib YAML or JSON).
    pub file: PathBuf,
    /// Which trial of the first batch (0-based; the first batch has parallelTrialCount trials, at
    /// most maxTrialCount).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub trial_index: u32,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ManifestFormat::Yaml)]
    pub format: ManifestFormat,
    /// Sextant's API as trial pods reach it.
    #[arg(long, value_name = "URL", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// The image of the metrics collector sidecar.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_COLLECTOR_IMAGE)]
    pub collector_image: String,
}

/// `-o` values of `sextant render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ManifestFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// Runs `sextant render`.
pub fn run(args: RenderArgs) -> Result<u8, CliError> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", args.file.display())))?;
    let checked =
        spec::check(&text).map_err(|e| CliError::input(format!("{}: {e}", args.file.display())))?;
    let cluster = ClusterSettings {
        endpoint: args.endpoint,
        collector_image: args.collector_image,
        ..ClusterSettings::default()
    };
    let workload = first_batch_workload(&checked, args.trial_index, &cluster)
        .map_err(|e| CliError::input(format!("{}: {e}", args.file.display())))?;
    print_structured(
        match args.format {
            ManifestFormat::Yaml => OutputFormat::Yaml,
            ManifestFormat::Json => OutputFormat::Json,
        },
        &workload,
    )?;
    Ok(0)
}

/// The workload of trial `index` (0-based) of the experiment's first batch.
pub fn first_batch_workload(
    checked: &CheckedExperiment,
    index: u32,
    cluster: &ClusterSettings,
) -> Result<Value, String> {
    let Decision::Continue { new_trials } = policy::decide(checked, &[], false, None) else {
        return Err("the experiment would complete before its first trial".into());
    };
    if index >= new_trials {
        return Err(format!(
            "--trial-index {index}: the first batch has {new_trials} trial(s) (parallelTrialCount, capped by maxTrialCount); \
             later trials depend on the results of earlier ones"
        ));
    }
    let engine =
        sextant_suggestion::configure(&checked.algorithm.name, &checked.algorithm.settings)
            .map_err(|e| format!("spec.algorithm: {e}"))?;
    // The seed the controller stores with a new experiment (controller::resume::prepare).
    let seed = checked
        .algorithm
        .seed
        .unwrap_or_else(|| seed_from_name(&checked.name));
    let suggestions = engine
        .engine
        .suggest(&SuggestRequest {
            space: &checked.space,
            history: &[],
            pending: &[],
            count: new_trials as usize,
            seed,
            state: None,
        })
        .map_err(|e| format!("the {} engine: {e}", engine.engine.name()))?;
    let point = suggestions.points.get(index as usize).ok_or_else(|| {
        format!(
            "--trial-index {index}: the {} engine suggests {} trial(s) for the first batch",
            engine.engine.name(),
            suggestions.points.len()
        )
    })?;
    let assignments: Vec<ParameterAssignment> = checked
        .space
        .render(point)
        .into_iter()
        .map(|(name, value)| ParameterAssignment { name, value })
        .collect();
    let trial = TrialIdentity {
        name: trial_name(&checked.name, u64::from(index)),
        namespace: checked
            .experiment
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
    };
    render_workload(checked, &trial, &assignments, cluster).map_err(|e| e.to_string())
}

/// Renders the first trial of every `*.yaml` Experiment in `examples` into `out`, one YAML file
/// per Experiment with the same file name; returns the written paths, sorted.
pub fn render_examples(examples: &Path, out: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(examples)
        .map_err(|e| format!("cannot read {}: {e}", examples.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut written = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let checked = spec::check(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let workload = first_batch_workload(&checked, 0, &ClusterSettings::default())
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let yaml = serde_saphyr::to_string(&workload).map_err(|e| e.to_string())?;
        let target = out.join(file.file_name().unwrap_or_default());
        std::fs::write(&target, yaml)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        written.push(target);
    }
    Ok(written)
}

/// The rendered workloads of `examples/digits/*.yaml` in a fresh temporary directory, for tests
/// that validate manifests (a schema check of what the controller would create). Public and not
/// `cfg(test)` so that the integration tests (`tests/`) can call it.
pub fn rendered_examples() -> Result<(tempfile::TempDir, Vec<PathBuf>), String> {
    let dir =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits");
    let written = render_examples(&examples, dir.path())?;
    Ok((dir, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = include_str!("../../examples/digits/random.yaml");

    #[test]
    fn every_digits_example_renders_a_job_with_a_collector() {
        let (_dir, files) = rendered_examples().unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"random.yaml".to_string()), "{names:?}");
        assert!(names.contains(&"pytorch-gpu.yaml".to_string()), "{names:?}");
        for file in &files {
            let workload: Value =
                serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            assert_eq!(workload["kind"], "Job", "{}", file.display());
            let init = &workload["spec"]["template"]["spec"]["initContainers"];
            assert_eq!(init[0]["name"], "sextant-collector", "{}", file.display());
        }
    }

    #[test]
    fn the_first_trial_is_the_controllers_first_suggestion() {
        let checked = spec::check(RANDOM).unwrap();
        let cluster = ClusterSettings::default();
        let first = first_batch_workload(&checked, 0, &cluster).unwrap();
        assert_eq!(first["metadata"]["name"], "digits-random-0001");
        assert_eq!(first["metadata"]["namespace"], "kubeflow");
        // Deterministic: the same seed gives the same trial.
        assert_eq!(first, first_batch_workload(&checked, 0, &cluster).unwrap());
        let third = first_batch_workload(&checked, 2, &cluster).unwrap();
        assert_eq!(third["metadata"]["name"], "digits-random-0003");
        assert_ne!(
            first["spec"]["template"]["spec"]["containers"],
            third["spec"]["template"]["spec"]["containers"]
        );
        // parallelTrialCount is 3: a fourth trial depends on results.
        let err = first_batch_workload(&checked, 3, &cluster).unwrap_err();
        assert!(err.contains("first batch has 3 trial(s)"), "{err}");
    }
}

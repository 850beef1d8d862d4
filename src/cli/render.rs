//! `sextant render FILE`: the Kubernetes workload the controller would create for a trial of an
//! Experiment, metrics collector included, without a cluster.
//!
//! The trial's values come from the configured engine asked as the controller asks it for the
//! experiment's first batch: the same seed (`random_state`, else derived from the name), the same
//! batch size (the policy's decision with no trial yet), no history. Later trials depend on how
//! earlier ones did, so only the first batch can be shown.

use std::path::PathBuf;

use sextant_algorithms::SuggestRequest;
use sextant_suggestion::seed_from_name;
use serde_json::Value;

use super::CliError;
use super::output::{OutputFormat, print_structured};
use crate::controller::driver::trial_name;
use crate::controller::policy::{self, Decision};
use crate::runtime::kubernetes::{ClusterSettings, DEFAULT_COLLECTOR_IMAGE, DEFAULT_ENDPOINT};
use crate::runtime::kubernetes::render::render_workload;
use crate::spec::template::TrialIdentity;
use crate::spec::{self, CheckedExperiment, ParameterAssignment};

/// The namespace of trials whose Experiment names none (as the controller's driver does).
pub const DEFAULT_NAMESPACE: &str = "default";

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

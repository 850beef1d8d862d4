//! `sextant crd`: prints the Experiment, Trial and Suggestion CRDs as one multi-document YAML.
//!
//! The manifests are generated from the Rust types (`spec::crd`); `deploy/crds.yaml` is this
//! command's output, and a test fails when the two drift apart.

use super::CliError;
use super::output::write_stdout;
use crate::spec::crd;

/// The first lines of the output: where it comes from.
const HEADER: &str = "# Sextant's kubeflow.org/v1beta1 CRDs (Experiment, Trial, Suggestion).\n\
                      # Generated from the Rust types: `cargo run -- crd > deploy/crds.yaml`; do not edit.\n";

/// Runs `sextant crd`.
pub fn run() -> Result<u8, CliError> {
    write_stdout(&manifests()?)?;
    Ok(0)
}

/// The CRDs as YAML documents, each opened by `---`, in a fixed order: Experiment, Trial,
/// Suggestion (object keys are sorted by the schema types, so the text is stable).
pub fn manifests() -> Result<String, CliError> {
    let mut text = String::from(HEADER);
    for definition in crd::crds() {
        text.push_str("---\n");
        text.push_str(
            &serde_saphyr::to_string(&definition).map_err(|e| CliError::failed(e.to_string()))?,
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_crds_yaml_is_the_generated_output() {
        let checked_in = include_str!("../../deploy/crds.yaml");
        assert!(
            checked_in == manifests().unwrap(),
            "deploy/crds.yaml differs from what the code generates; \
             run `cargo run -- crd > deploy/crds.yaml`"
        );
    }

    #[test]
    fn every_document_reads_back_as_a_crd_in_order() {
        let text = manifests().unwrap();
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let names: Vec<&str> = documents
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "experiments.kubeflow.org",
                "trials.kubeflow.org",
                "suggestions.kubeflow.org"
            ]
        );
    }
}

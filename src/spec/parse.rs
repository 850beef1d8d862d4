//! Reading an Experiment document (YAML or JSON; Katib files may hold several documents).

use super::error::{FieldError, SpecError};
use super::types::{API_VERSION, Experiment};

/// Parses the one Experiment in `text`. Other documents (a Namespace, a ConfigMap ...) are skipped;
/// zero or several Experiments is an error, since a run is about exactly one.
pub fn parse_experiment(text: &str) -> Result<Experiment, SpecError> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| SpecError::Syntax(format!("not valid YAML or JSON: {e}")))?;
    let mut experiments: Vec<serde_json::Value> = documents
        .into_iter()
        .filter(|doc| doc.get("kind").and_then(|k| k.as_str()) == Some("Experiment"))
        .collect();
    let document = match experiments.len() {
        1 => experiments.remove(0),
        0 => {
            return Err(SpecError::Invalid(vec![FieldError::new(
                "kind",
                "",
                "no document with `kind: Experiment` found; Sextant reads Katib Experiments (apiVersion kubeflow.org/v1beta1)",
            )]));
        }
        n => {
            return Err(SpecError::Invalid(vec![FieldError::new(
                "kind",
                format!("{n} Experiments"),
                "the file holds several Experiments; put one Experiment per file",
            )]));
        }
    };
    let api_version = document
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if api_version != API_VERSION {
        return Err(SpecError::Invalid(vec![FieldError::new(
            "apiVersion",
            api_version,
            format!("expected {API_VERSION:?}"),
        )]));
    }
    serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        SpecError::Invalid(vec![FieldError::new(
            if path == "." { String::new() } else { path },
            "",
            e.inner().to_string(),
        )])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
---
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: demo
spec:
  maxTrialCount: 4
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: 0.01, max: "0.1"}
"#;

    #[test]
    fn reads_katib_yaml_and_bare_numbers_as_strings() {
        let experiment = parse_experiment(MINIMAL).unwrap();
        assert_eq!(experiment.metadata.name, "demo");
        assert_eq!(experiment.spec.max_trial_count, Some(4));
        let space = &experiment.spec.parameters[0].feasible_space;
        assert_eq!(space.min.as_deref(), Some("0.01"));
        assert_eq!(space.max.as_deref(), Some("0.1"));
    }

    #[test]
    fn skips_other_documents() {
        let text = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: x}}\n{MINIMAL}");
        assert_eq!(parse_experiment(&text).unwrap().metadata.name, "demo");
    }

    #[test]
    fn unknown_spec_field_is_named_with_its_path() {
        let text = MINIMAL.replace("maxTrialCount", "maxTrialCounts");
        let err = parse_experiment(&text).unwrap_err().to_string();
        assert!(err.contains("maxTrialCounts"), "{err}");
        assert!(err.contains("spec"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let text = MINIMAL.replace("maxTrialCount: 4", "maxTrialCount: many");
        let err = parse_experiment(&text).unwrap_err().to_string();
        assert!(err.contains("spec.maxTrialCount"), "{err}");
    }

    #[test]
    fn malformed_yaml_is_a_syntax_error() {
        let err = parse_experiment("spec: [unclosed").unwrap_err();
        assert!(matches!(err, SpecError::Syntax(_)), "{err:?}");
    }

    #[test]
    fn wrong_api_version_is_refused() {
        let text = MINIMAL.replace("v1beta1", "v1alpha3");
        let err = parse_experiment(&text).unwrap_err().to_string();
        assert!(
            err.contains("apiVersion") && err.contains("kubeflow.org/v1beta1"),
            "{err}"
        );
    }

    #[test]
    fn no_experiment_and_two_experiments_are_refused() {
        assert!(
            parse_experiment("kind: Pod\n")
                .unwrap_err()
                .to_string()
                .contains("kind: Experiment")
        );
        let two = format!("{MINIMAL}\n{MINIMAL}");
        assert!(
            parse_experiment(&two)
                .unwrap_err()
                .to_string()
                .contains("one Experiment per file")
        );
    }
}

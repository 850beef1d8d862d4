//! Bad input: exit code 2 and a message naming the field; never a panic.

use crate::fixture::{ExperimentFile, Workspace, text};

fn assert_rejected(ws: &Workspace, yaml: &str, needles: &[&str]) {
    let file = ws.write("bad.yaml", yaml);
    for command in ["validate", "run"] {
        let out = ws.run(&[command, file.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{command}: expected exit 2, stderr: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{command} panicked: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{command}: message lacks {needle:?}: {stderr}"
            );
        }
    }
}

#[test]
fn malformed_yaml_is_exit_2() {
    let ws = Workspace::new();
    assert_rejected(
        &ws,
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec: [unclosed\n",
        &["YAML"],
    );
}

#[test]
fn a_wrong_field_type_names_the_field() {
    let ws = Workspace::new();
    let yaml = ExperimentFile::default()
        .yaml()
        .replace("maxTrialCount: 4", "maxTrialCount: lots");
    assert_rejected(&ws, &yaml, &["spec.maxTrialCount"]);
}

#[test]
fn a_wrong_parameter_value_names_the_field_path_and_what_is_accepted() {
    let ws = Workspace::new();
    let yaml = ExperimentFile::default()
        .yaml()
        .replace("parameterType: double", "parameterType: float");
    assert_rejected(
        &ws,
        &yaml,
        &["spec.parameters[0].parameterType", "float", "double"],
    );
}

#[test]
fn an_unknown_spec_field_is_named() {
    let ws = Workspace::new();
    let yaml = ExperimentFile::default()
        .yaml()
        .replace("parallelTrialCount", "parallelTrials");
    assert_rejected(&ws, &yaml, &["parallelTrials"]);
}

#[test]
fn an_algorithm_not_built_yet_says_so() {
    let ws = Workspace::new();
    let yaml = ExperimentFile {
        algorithm: "pbt",
        settings: "[]",
        ..Default::default()
    }
    .yaml();
    assert_rejected(
        &ws,
        &yaml,
        &["spec.algorithm", "pbt", "does not provide yet"],
    );
}

#[test]
fn a_collector_not_built_yet_says_so() {
    let ws = Workspace::new();
    let yaml = ExperimentFile::default().yaml().replace(
        "  parameters:",
        "  metricsCollectorSpec:\n    collector:\n      kind: PrometheusMetric\n  parameters:",
    );
    assert_rejected(
        &ws,
        &yaml,
        &[
            "spec.metricsCollectorSpec.collector.kind",
            "PrometheusMetric",
        ],
    );
}

#[test]
fn a_missing_file_is_exit_2() {
    let ws = Workspace::new();
    let out = ws.run(&["run", "/nonexistent/experiment.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_are_exit_2() {
    let ws = Workspace::new();
    assert_eq!(ws.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(ws.run(&["get", "trials", "nope"]).status.code(), Some(2));
    assert_eq!(
        ws.run(&["describe", "trial", "nope"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_valid_file_validates_and_prints_its_defaults() {
    let ws = Workspace::new();
    let file = ws.write("ok.yaml", &ExperimentFile::default().yaml());
    let out = ws.run(&["validate", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ws.run(&["validate", file.to_str().unwrap(), "-o", "json"]);
    let defaulted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(defaulted["spec"]["resumePolicy"], "Never");
    assert_eq!(
        defaulted["spec"]["metricsCollectorSpec"]["collector"]["kind"],
        "StdOut"
    );
}

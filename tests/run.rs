//! Whole experiments through `sextant run`.

use std::collections::HashSet;

use crate::fixture::{ExperimentFile, Workspace, count, states, text, trials};

#[test]
fn a_whole_experiment_runs_stores_and_reports() {
    let ws = Workspace::new();
    let file = ws.write(
        "exp.yaml",
        &ExperimentFile {
            name: "whole",
            objective: "{type: minimize, objectiveMetricName: loss, additionalMetricNames: [accuracy]}",
            command: "[sh, -c, 'echo \"epoch=1 loss=${trialParameters.x} accuracy=0.5\"; echo \"epoch=2 loss=${trialParameters.x} accuracy=0.75\"']",
            max_trials: 6,
            parallel: 3,
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is not used"),
        "the image note is missing: {stderr}"
    );
    assert!(
        text(&out.stdout).contains("best: whole-"),
        "summary: {}",
        text(&out.stdout)
    );

    let all = trials(&ws, "whole");
    assert_eq!(states(&all), vec!["Succeeded"; 6]);
    let names: HashSet<&str> = all.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 6);
    for trial in &all {
        let x: f64 = trial["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..=1.0).contains(&x));
        // minimize with the default strategy (min): the objective is the loss printed
        assert!(
            (trial["objective"].as_f64().unwrap() - x).abs() < 1e-9,
            "{trial}"
        );
        let log = std::fs::read_to_string(trial["logPath"].as_str().unwrap()).unwrap();
        assert!(log.contains("epoch=2"), "log: {log}");
    }

    // metrics: the series with explicit steps
    let first = all[0]["name"].as_str().unwrap();
    let series = ws.json(&["metrics", first, "--metric", "accuracy"]);
    let points: Vec<(i64, f64)> = series
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["step"].as_i64().unwrap(), p["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(points, vec![(1, 0.5), (2, 0.75)]);

    // best = the smallest loss
    let best = ws.json(&["best", "whole"]);
    let min = all
        .iter()
        .map(|t| t["objective"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best["objective"].as_f64().unwrap(), min);

    let experiment = ws.json(&["describe", "experiment", "whole"]);
    assert_eq!(experiment["status"], "Succeeded");
    assert_eq!(experiment["reason"], "ExperimentMaxTrialsReached");
    assert_eq!(experiment["trials"]["succeeded"], 6);

    let described = ws.run(&["describe", "trial", first]);
    let described = text(&described.stdout);
    for needle in [
        "Parameters:",
        "x = ",
        "Succeeded",
        "TrialSucceeded",
        "Log:",
        "accuracy",
    ] {
        assert!(
            described.contains(needle),
            "describe trial lacks {needle:?}: {described}"
        );
    }
    let listed = ws.run(&["get", "experiments"]);
    assert!(
        text(&listed.stdout).contains("whole"),
        "{}",
        text(&listed.stdout)
    );
    let yaml = ws.run(&["get", "trials", "whole", "-o", "yaml"]);
    assert!(
        yaml.status.success() && text(&yaml.stdout).contains("state: Succeeded"),
        "{}",
        text(&yaml.stdout)
    );
}

#[test]
fn grid_exhaustion_ends_the_experiment() {
    let ws = Workspace::new();
    let file = ws.write(
        "grid.yaml",
        &ExperimentFile {
            name: "gridded",
            algorithm: "grid",
            settings: "[]",
            parameters: "[{name: a, parameterType: int, feasibleSpace: {min: \"1\", max: \"2\"}}, \
                         {name: b, parameterType: categorical, feasibleSpace: {list: [p, q, r]}}]",
            trial_parameters: "[{name: a, reference: a}, {name: b, reference: b}]",
            command: "[sh, -c, 'echo loss=${trialParameters.a} # ${trialParameters.b}']",
            max_trials: 20,
            parallel: 4,
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let all = trials(&ws, "gridded");
    assert_eq!(count(&all, "Succeeded"), 6, "a 2×3 grid has 6 points");
    let points: HashSet<String> = all.iter().map(|t| t["assignments"].to_string()).collect();
    assert_eq!(points.len(), 6, "grid points repeat");
    let experiment = ws.json(&["describe", "experiment", "gridded"]);
    assert_eq!(experiment["reason"], "ExperimentSuggestionEndReached");
    assert!(
        experiment["message"]
            .as_str()
            .unwrap()
            .contains("search space exhausted"),
        "{experiment}"
    );
}

#[test]
fn failed_trials_count_against_max_failed_trial_count() {
    let ws = Workspace::new();
    let file = ws.write(
        "fail.yaml",
        &ExperimentFile {
            name: "failing",
            command: "[sh, -c, 'echo about to fail at x=${trialParameters.x} >&2; exit 3']",
            max_trials: 10,
            parallel: 1,
            max_failed: Some(2),
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed experiment exits 1; stderr: {}",
        text(&out.stderr)
    );
    let all = trials(&ws, "failing");
    assert_eq!(states(&all), vec!["Failed", "Failed"]);
    let message = all[0]["message"].as_str().unwrap();
    assert!(
        message.contains("code 3") && message.contains("about to fail"),
        "{message}"
    );
    let experiment = ws.json(&["describe", "experiment", "failing"]);
    assert_eq!(experiment["status"], "Failed");
    assert_eq!(experiment["reason"], "ExperimentFailed");
}

#[test]
fn a_trial_without_the_objective_metric_is_metrics_unavailable() {
    let ws = Workspace::new();
    let file = ws.write(
        "nometric.yaml",
        &ExperimentFile {
            name: "quiet",
            command: "[sh, -c, 'echo accuracy=${trialParameters.x}']",
            max_trials: 2,
            parallel: 2,
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let all = trials(&ws, "quiet");
    assert_eq!(states(&all), vec!["MetricsUnavailable"; 2]);
    assert!(
        all[0]["message"].as_str().unwrap().contains("\"loss\""),
        "{}",
        all[0]["message"]
    );
    let best = ws.run(&["best", "quiet"]);
    assert_eq!(best.status.code(), Some(1), "no best trial yet");
}

#[test]
fn metrics_unavailable_counts_as_failed_for_the_budget() {
    let ws = Workspace::new();
    let file = ws.write(
        "nometric.yaml",
        &ExperimentFile {
            name: "quiet-budget",
            command: "[sh, -c, 'echo nothing for ${trialParameters.x}']",
            max_trials: 5,
            parallel: 1,
            max_failed: Some(1),
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert_eq!(
        states(&trials(&ws, "quiet-budget")),
        vec!["MetricsUnavailable"]
    );
}

#[test]
fn a_command_that_cannot_start_is_bad_input_with_a_clear_message() {
    let ws = Workspace::new();
    let file = ws.write(
        "missing.yaml",
        &ExperimentFile {
            name: "missing",
            command: "[./no-such-trainer.sh, '${trialParameters.x}']",
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no-such-trainer.sh") && stderr.contains("could not start"),
        "{stderr}"
    );
}

#[test]
fn trials_run_in_the_experiment_files_directory_with_the_container_env() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path().join("proj")).unwrap();
    std::fs::write(
        ws.path().join("proj/train.sh"),
        "#!/bin/sh\necho \"loss=$SCALE\"\n",
    )
    .unwrap();
    let file = ws.path().join("proj/exp.yaml");
    std::fs::write(
        &file,
        ExperimentFile {
            name: "envy",
            command: "[sh, ./train.sh]",
            max_trials: 1,
            parallel: 1,
            trial_parameters: "[{name: x, reference: x}]",
            extra_container: "                env:\n                  - name: SCALE\n                    value: \"0.25\"\n                args: [\"${trialParameters.x}\"]\n",
            ..Default::default()
        }
        .yaml(),
    )
    .unwrap();
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let all = trials(&ws, "envy");
    assert_eq!(all[0]["objective"].as_f64(), Some(0.25));
}

#[test]
fn non_utf8_output_does_not_stop_metric_collection() {
    // Regression: reading output as UTF-8 text stopped at the first invalid byte, so later metric
    // lines were lost (and a chatty trial could block on a full pipe).
    let ws = Workspace::new();
    let file = ws.write(
        "bytes.yaml",
        &ExperimentFile {
            name: "bytes",
            command: "[sh, -c, 'printf \"\\377\\376 binary noise\\n\"; echo \"loss=${trialParameters.x}\"']",
            max_trials: 1,
            parallel: 1,
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = trials(&ws, "bytes");
    assert_eq!(states(&all), vec!["Succeeded"], "{all:?}");
    let log = std::fs::read(all[0]["logPath"].as_str().unwrap()).unwrap();
    assert!(
        log.starts_with(&[0xff, 0xfe]),
        "the log keeps the raw bytes"
    );
}

#[test]
fn the_file_collector_reads_json_lines_per_trial() {
    let ws = Workspace::new();
    let metrics = ws.path().join("metrics.json");
    let collector = format!(
        "  metricsCollectorSpec:\n    collector:\n      kind: File\n    source:\n      fileSystemPath:\n        kind: File\n        format: JSON\n        path: {}\n  parameters:",
        metrics.display()
    );
    let command = format!(
        "[sh, -c, 'echo \"{{\\\"loss\\\": ${{trialParameters.x}}, \\\"epoch\\\": 1}}\" >> {}']",
        metrics.display()
    );
    let yaml = ExperimentFile {
        name: "filed",
        command: &command,
        max_trials: 3,
        parallel: 1,
        ..Default::default()
    }
    .yaml()
    .replacen("  parameters:", &collector, 1);
    let file = ws.write("file.yaml", &yaml);
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = trials(&ws, "filed");
    assert_eq!(states(&all), vec!["Succeeded"; 3]);
    for trial in &all {
        // each trial sees only its own line, although the trainer appends to a shared path
        let x: f64 = trial["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (trial["objective"].as_f64().unwrap() - x).abs() < 1e-9,
            "{trial}"
        );
        assert_eq!(trial["metrics"][0]["count"], 1, "{trial}");
    }

    let parallel = yaml
        .replace("parallelTrialCount: 1", "parallelTrialCount: 2")
        .replace("name: filed", "name: filed2");
    let file = ws.write("file2.yaml", &parallel);
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("parallelTrialCount to 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn push_collector_trials_send_their_metrics_to_the_runs_own_api() {
    // `sextant run` serves a loopback API while it runs, so a Push trial works locally too.
    let ws = Workspace::new();
    let trainer =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/push_trainer.py");
    let command = format!(
        "[python3, '{}', '${{trialParameters.x}}']",
        trainer.display()
    );
    let file = ws.write(
        "push.yaml",
        &ExperimentFile {
            name: "local-push",
            command: &command,
            metrics_collector: "{collector: {kind: Push}}",
            max_trials: 3,
            parallel: 3,
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("live API on http://127.0.0.1:"),
        "{}",
        text(&out.stderr)
    );
    let all = trials(&ws, "local-push");
    assert_eq!(count(&all, "Succeeded"), 3, "{all:?}");
    for trial in &all {
        let x: f64 = trial["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let smallest = (x - 0.3).powi(2) + 0.1 / 3.0;
        assert!(
            (trial["objective"].as_f64().unwrap() - smallest).abs() < 1e-9,
            "{trial}"
        );
    }
}

//! The shipped example: the digits trainer tuned by random search, for real.

use std::path::Path;

use crate::fixture::{Workspace, count, text, trials};

#[test]
fn the_digits_example_trains_real_models() {
    let numpy = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .output();
    assert!(
        numpy.is_ok_and(|o| o.status.success()),
        "the digits example needs python3 with numpy: pip install -r examples/digits/requirements.txt"
    );
    let ws = Workspace::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits/random.yaml");
    // A shorter run of the same file: fewer trials, same trainer, same data.
    let yaml = std::fs::read_to_string(&example).unwrap();
    let yaml = regex_replace_max_trials(&yaml, 3);
    let file = example.with_file_name("random-ci-copy.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = ws.run(&["run", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let name = ws.json(&["get", "experiments"])[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let all = trials(&ws, &name);
    assert_eq!(count(&all, "Succeeded"), 3, "{all:?}");
    for trial in &all {
        let accuracy = trial["objective"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{trial}");
        let loss = trial["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "loss");
        assert!(
            loss.is_some(),
            "loss is collected as an additional metric: {trial}"
        );
    }
    let best = ws.json(&["best", &name]);
    assert!(
        best["objective"].as_f64().unwrap() > 0.5,
        "a trained model beats chance by far: {best}"
    );
}

fn regex_replace_max_trials(yaml: &str, n: u32) -> String {
    yaml.lines()
        .map(|line| {
            if line.trim_start().starts_with("maxTrialCount:") {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}maxTrialCount: {n}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_example_experiment_validates() {
    let ws = Workspace::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = ws.run(&["validate", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected the random, grid, sobol and pytorch examples"
    );
}

#[test]
fn the_katib_medianstop_example_runs_unchanged() {
    let ws = Workspace::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits/medianstop.yaml");
    let out = ws.run(&["run", example.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = trials(&ws, "digits-medianstop");
    assert_eq!(all.len(), 24);
    assert!(
        count(&all, "EarlyStopped") >= 1,
        "some losing trials are stopped: {all:?}"
    );
    assert_eq!(count(&all, "EarlyStopped") + count(&all, "Succeeded"), 24);
}

/// `examples/digits/<file>` run for real with `maxTrialCount` cut to `n`; its trials.
fn run_shortened(ws: &Workspace, file: &str, n: u32) -> Vec<serde_json::Value> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/digits")
        .join(file);
    let yaml = regex_replace_max_trials(&std::fs::read_to_string(&example).unwrap(), n);
    let copy = example.with_file_name(format!("{}-ci-copy.yaml", file.trim_end_matches(".yaml")));
    std::fs::write(&copy, yaml).unwrap();
    let out = ws.run(&["run", copy.to_str().unwrap()]);
    let _ = std::fs::remove_file(&copy);
    assert!(out.status.success(), "{file}: {}", text(&out.stderr));
    let name = ws
        .json(&["get", "experiments"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .find(|n| file.starts_with(n.trim_start_matches("digits-")))
        .unwrap();
    trials(ws, &name)
}

/// The TPE and CMA-ES engines drive real trials through the local runtime: every trial succeeds
/// and no assignment repeats (batches of 3 run in parallel).
#[test]
fn the_tpe_and_cmaes_examples_train_real_models() {
    let ws = Workspace::new();
    // TPE: 5 start-up points, then model-chosen batches. CMA-ES: one generation of 6, then the
    // next from the updated mean.
    for (file, n) in [("tpe.yaml", 9), ("cmaes.yaml", 9)] {
        let all = run_shortened(&ws, file, n);
        assert_eq!(count(&all, "Succeeded"), n as usize, "{file}: {all:?}");
        let assignments: std::collections::HashSet<String> =
            all.iter().map(|t| t["assignments"].to_string()).collect();
        assert_eq!(
            assignments.len(),
            all.len(),
            "{file}: a repeated point in {all:?}"
        );
    }
}

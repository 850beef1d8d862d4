//! Early stopping with real processes.

use crate::fixture::{ExperimentFile, Workspace, count, text, trials};

/// A trainer whose loss is `x + 1/epoch`, one epoch every 50 ms for 40 epochs.
const TRAINER: &str = r#"import sys, time
x = float(sys.argv[1])
for epoch in range(1, 41):
    print(f"epoch={epoch} loss={x + 1.0 / epoch}", flush=True)
    time.sleep(0.05)
"#;

#[test]
fn medianstop_stops_losing_trials_and_their_processes_are_gone() {
    let ws = Workspace::new();
    ws.write("trainer.py", TRAINER);
    let yaml = ExperimentFile {
        name: "stopping",
        algorithm: "grid",
        settings: "[]",
        parameters: "[{name: x, parameterType: int, feasibleSpace: {min: \"0\", max: \"5\"}}]",
        command: "[python3, trainer.py, '${trialParameters.x}']",
        max_trials: 6,
        parallel: 2,
        ..Default::default()
    }
    .yaml()
    .replacen(
        "  parameters:",
        "  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"2\"}\n      - {name: start_step, value: \"3\"}\n  parameters:",
        1,
    );
    let file = ws.write("stop.yaml", &yaml);
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let all = trials(&ws, "stopping");
    assert_eq!(all.len(), 6, "{all:?}");
    // x = 0 and 1 run first, with too few other trials to compare against: they finish.
    assert_eq!(all[0]["state"], "Succeeded");
    assert_eq!(all[1]["state"], "Succeeded");
    assert!(
        count(&all, "EarlyStopped") >= 3,
        "the worse trials are stopped: {all:?}"
    );
    for trial in all.iter().filter(|t| t["state"] == "EarlyStopped") {
        let message = trial["message"].as_str().unwrap();
        assert!(
            message.contains("medianstop"),
            "the reason names the rule: {message}"
        );
        assert_eq!(trial["reason"], "TrialEarlyStopped");
        let loss = trial["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "loss")
            .unwrap();
        assert!(
            loss["count"].as_u64().unwrap() < 40,
            "stopped before the end: {trial}"
        );
        // Its best value still counts for the objective.
        assert_eq!(trial["objective"].as_f64(), loss["min"].as_f64());
        // The process was stopped within the grace period after the decision.
        let series = ws.json(&[
            "metrics",
            trial["name"].as_str().unwrap(),
            "--metric",
            "loss",
        ]);
        let last_point: jiff::Timestamp = series.as_array().unwrap().last().unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let finished: jiff::Timestamp = trial["finished"].as_str().unwrap().parse().unwrap();
        assert!(
            finished.duration_since(last_point).as_secs_f64() < 10.0,
            "{trial}"
        );
        assert!(
            !process_alive_for(trial["name"].as_str().unwrap()),
            "{trial}"
        );
    }
    let described = ws.run(&["describe", "trial", all[3]["name"].as_str().unwrap()]);
    assert!(
        text(&described.stdout).contains("TrialEarlyStopped"),
        "{}",
        text(&described.stdout)
    );
    let best = ws.json(&["best", "stopping"]);
    assert_eq!(best["bestTrialName"], all[0]["name"]);
}

/// Whether any process still carries this trial's name in its environment.
fn process_alive_for(trial: &str) -> bool {
    let marker = format!("SEXTANT_TRIAL={trial}");
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries.filter_map(Result::ok).any(|entry| {
                std::fs::read(entry.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == marker.as_bytes()))
            })
        })
        .unwrap_or(false)
}

/// Hyperband over the epochs of a quick trainer: loss = x + 1/epochs.
fn hyperband_experiment(name: &str, parallel: u32) -> String {
    ExperimentFile {
        name,
        algorithm: "hyperband",
        settings: "[{name: resource_name, value: epochs}, {name: r_l, value: \"9\"}, {name: eta, value: \"3\"}]",
        parameters: "[{name: x, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}, \
                     {name: epochs, parameterType: int, feasibleSpace: {min: \"1\", max: \"1\"}}]",
        trial_parameters: "[{name: x, reference: x}, {name: epochs, reference: epochs}]",
        command: "[python3, -c, 'import sys; x, n = float(sys.argv[1]), int(sys.argv[2]); [print(f\"epoch={e} loss={x + 1.0 / e}\") for e in range(1, n + 1)]', \
                  '${trialParameters.x}', '${trialParameters.epochs}']",
        max_trials: 100,
        parallel,
        ..Default::default()
    }
    .yaml()
}

#[test]
fn hyperband_completes_its_schedule_with_any_parallelism() {
    // r_l = 9, eta = 3: brackets of 9@1 → 3@3 → 1@9, 5@3 → 1@9, and 3@9: 22 trials.
    for parallel in [1, 5] {
        let ws = Workspace::new();
        let name = format!("hyperband-{parallel}");
        let file = ws.write("hb.yaml", &hyperband_experiment(&name, parallel));
        let out = ws.run(&["run", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "parallelism {parallel}: {}",
            text(&out.stderr)
        );
        let all = trials(&ws, &name);
        assert_eq!(all.len(), 22, "parallelism {parallel}: {all:?}");
        assert_eq!(count(&all, "Succeeded"), 22);
        let mut by_epochs = std::collections::BTreeMap::new();
        for trial in &all {
            let epochs = trial["assignments"][1]["value"]
                .as_str()
                .unwrap()
                .to_string();
            *by_epochs.entry(epochs).or_insert(0) += 1;
        }
        let expected: std::collections::BTreeMap<String, i32> = [
            ("1".to_string(), 9),
            ("3".to_string(), 8),
            ("9".to_string(), 5),
        ]
        .into();
        assert_eq!(by_epochs, expected, "parallelism {parallel}");
        let experiment = ws.json(&["describe", "experiment", &name]);
        assert_eq!(
            experiment["reason"], "ExperimentSuggestionEndReached",
            "{experiment}"
        );
    }
}

#[test]
fn replay_runs_the_rules_over_recorded_curves() {
    let ws = Workspace::new();
    ws.write(
        "trainer.py",
        &TRAINER.replace("time.sleep(0.05)", "time.sleep(0.001)"),
    );
    let yaml = ExperimentFile {
        name: "recorded",
        algorithm: "grid",
        settings: "[]",
        parameters: "[{name: x, parameterType: int, feasibleSpace: {min: \"0\", max: \"5\"}}]",
        command: "[python3, trainer.py, '${trialParameters.x}']",
        max_trials: 6,
        parallel: 3,
        ..Default::default()
    }
    .yaml();
    let file = ws.write("full.yaml", &yaml);
    assert!(ws.run(&["run", file.to_str().unwrap()]).status.success());
    let out = ws.run(&["bench", "replay", "recorded"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    // 6 trials × 40 epochs recorded; every rule's line says how many steps it would have used.
    assert!(table.contains("240 steps"), "{table}");
    for rule in ["asha", "medianstop", "percentile 25"] {
        assert!(table.contains(rule), "{table}");
    }
}

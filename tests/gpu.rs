//! GPU slots handed out through CUDA_VISIBLE_DEVICES.

use std::collections::HashSet;

use crate::fixture::{ExperimentFile, Workspace, text, trials};

const GPU_LIMIT: &str = "                resources:\n                  limits:\n                    nvidia.com/gpu: 1\n";

#[test]
fn each_trial_gets_its_own_gpu_from_the_pool() {
    let ws = Workspace::new();
    let file = ws.write(
        "gpu.yaml",
        &ExperimentFile {
            name: "gpus",
            objective: "{type: minimize, objectiveMetricName: loss, additionalMetricNames: [device]}",
            // report the device as a metric, and overlap so both GPUs are busy at once
            command: "[sh, -c, 'echo \"device=$CUDA_VISIBLE_DEVICES\"; sleep 0.3; echo loss=${trialParameters.x}']",
            max_trials: 4,
            parallel: 4,
            extra_container: GPU_LIMIT,
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", "--gpus", "3,5", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = trials(&ws, "gpus");
    assert_eq!(all.len(), 4);
    let mut devices = HashSet::new();
    for trial in &all {
        let gpus: Vec<&str> = trial["gpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert_eq!(gpus.len(), 1, "{trial}");
        let device = trial["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "device")
            .unwrap()["latest"]
            .as_f64()
            .unwrap();
        assert_eq!(
            device.to_string(),
            gpus[0],
            "the process saw the GPU it was given"
        );
        devices.insert(gpus[0].to_string());
    }
    assert_eq!(devices, HashSet::from(["3".to_string(), "5".to_string()]));
}

#[test]
fn a_trial_asking_for_more_gpus_than_exist_fails_fast() {
    let ws = Workspace::new();
    let file = ws.write(
        "gpu.yaml",
        &ExperimentFile {
            name: "greedy",
            extra_container: &GPU_LIMIT.replace("gpu: 1", "gpu: 2"),
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", "--gpus", "0", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("2 GPU(s)") && stderr.contains("has 1"),
        "{stderr}"
    );
}

//! Interrupted and killed runs resume with exact counts and no duplicate names.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::{ExperimentFile, Workspace, count, text, trials};

const SLOW_TRIAL: &str = "[sh, -c, 'sleep 0.4; echo \"loss=${trialParameters.x}\"']";

fn slow_experiment(name: &str) -> String {
    ExperimentFile {
        name,
        command: SLOW_TRIAL,
        max_trials: 8,
        parallel: 2,
        ..Default::default()
    }
    .yaml()
}

/// Starts `sextant run` and waits until `finished` trials have ended (read from its progress).
fn start_and_wait_for(ws: &Workspace, file: &std::path::Path, finished: usize) -> Child {
    let mut child = ws
        .sextant()
        .args(["run", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sextant");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < finished {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {finished} finished trials"
        );
        match lines.next() {
            Some(Ok(line)) if line.starts_with('✓') => seen += 1,
            Some(Ok(_)) => {}
            _ => panic!("sextant exited before {finished} trials finished"),
        }
    }
    // keep draining stderr so the child never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    child
}

fn assert_resumed_exactly(ws: &Workspace, name: &str) {
    let all = trials(ws, name);
    assert_eq!(
        count(&all, "Succeeded"),
        8,
        "exactly maxTrialCount finished trials: {all:?}"
    );
    let names: Vec<&str> = all.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names.iter().collect::<HashSet<_>>().len(),
        names.len(),
        "duplicate trial names: {names:?}"
    );
    assert_eq!(count(&all, "Running") + count(&all, "Pending"), 0);
}

#[test]
fn sigkill_then_resume_keeps_the_counts_exact() {
    let ws = Workspace::new();
    let file = ws.write("slow.yaml", &slow_experiment("killed"));
    let mut child = start_and_wait_for(&ws, &file, 2);
    child.kill().expect("SIGKILL sextant");
    child.wait().unwrap();

    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "resume failed: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("resuming"),
        "{}",
        text(&out.stderr)
    );
    assert_resumed_exactly(&ws, "killed");
    let all = trials(&ws, "killed");
    let cut_off: Vec<_> = all.iter().filter(|t| t["state"] == "Killed").collect();
    assert!(
        !cut_off.is_empty(),
        "the trials running at the kill must be marked Killed"
    );
    for trial in cut_off {
        assert!(
            trial["message"].as_str().unwrap().contains("cut off"),
            "{trial}"
        );
    }
    // A third run finds the experiment complete and runs nothing.
    let again = ws.run(&["run", file.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(
        text(&again.stderr).contains("already completed"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(trials(&ws, "killed").len(), all.len());
}

#[test]
fn ctrl_c_stops_trials_and_resume_finishes_the_experiment() {
    interrupt_then_resume(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigterm_is_handled_like_ctrl_c() {
    interrupt_then_resume(nix::sys::signal::Signal::SIGTERM);
}

fn interrupt_then_resume(signal: nix::sys::signal::Signal) {
    let ws = Workspace::new();
    let file = ws.write("slow.yaml", &slow_experiment("interrupted"));
    let child = start_and_wait_for(&ws, &file, 1);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "Ctrl-C exits 130");

    let all = trials(&ws, "interrupted");
    assert!(
        count(&all, "Killed") >= 1,
        "running trials are stopped and marked Killed: {all:?}"
    );
    for trial in all.iter().filter(|t| t["state"] == "Killed") {
        assert!(
            trial["message"].as_str().unwrap().contains("interrupted"),
            "{trial}"
        );
    }
    let out = ws.run(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "resume failed: {}", text(&out.stderr));
    assert_resumed_exactly(&ws, "interrupted");
}

#[test]
fn a_changed_spec_under_the_same_name_is_refused() {
    let ws = Workspace::new();
    let first = ws.write(
        "a.yaml",
        &ExperimentFile {
            name: "same",
            max_trials: 1,
            parallel: 1,
            ..Default::default()
        }
        .yaml(),
    );
    assert!(ws.run(&["run", first.to_str().unwrap()]).status.success());
    let changed = ws.write(
        "b.yaml",
        &ExperimentFile {
            name: "same",
            max_trials: 1,
            parallel: 1,
            algorithm: "sobol",
            ..Default::default()
        }
        .yaml(),
    );
    let out = ws.run(&["run", changed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("spec.algorithm differs")
            && stderr.contains("sextant delete experiment same"),
        "{stderr}"
    );
    // and deleting it lets the new spec run
    assert!(ws.run(&["delete", "experiment", "same"]).status.success());
    assert!(ws.run(&["run", changed.to_str().unwrap()]).status.success());
}

//! Output mode: the collector wraps a real command and ships what it prints.
use std::process::Stdio;
use std::time::Duration;

use crate::fixture::{
    EXPERIMENT, FakeServer, Reply, TOKEN, TRIAL, assert_output, collector, free_port,
    spooled_lines, text, wait_for,
};

/// A shell loop printing `loss=1` … `loss=N`, one line each.
fn print_losses(n: u32) -> String {
    format!("i=1; while [ $i -le {n} ]; do echo loss=$i; i=$((i+1)); done")
}

#[test]
fn output_passes_through_exit_code_is_kept_and_points_are_delivered() {
    let server = FakeServer::start();
    let output = collector(&server.endpoint())
        .args(["--metric", "loss", "--", "sh", "-c"])
        .arg("echo loss=0.5; echo loss=0.4; exit 3")
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(3), "exit code 3");
    assert_eq!(text(&output.stdout), "loss=0.5\nloss=0.4\n");
    assert_output(&output, output.stderr.is_empty(), "nothing on stderr");
    assert_eq!(
        server.delivered_triples(),
        [("loss".into(), 0.5, 1), ("loss".into(), 0.4, 2)]
    );
    let requests = server.requests();
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        format!("/v1/experiments/{EXPERIMENT}/trials/{TRIAL}/metrics")
    );
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let timestamp = server.delivered()[0]["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(timestamp.parse::<jiff::Timestamp>().is_ok(), "{timestamp}");
}

#[test]
fn stderr_is_passed_through_and_read_too_with_steps_from_the_line() {
    let server = FakeServer::start();
    let output = collector(&server.endpoint())
        .args(["--metrics", "loss,accuracy", "--", "sh", "-c"])
        .arg("echo 'epoch=7 accuracy=0.9' >&2; printf 'loss=0.1'")
        .output()
        .unwrap();
    assert_output(&output, output.status.success(), "success");
    assert_eq!(text(&output.stderr), "epoch=7 accuracy=0.9\n");
    assert_eq!(
        text(&output.stdout),
        "loss=0.1",
        "a last line without newline"
    );
    let mut got = server.delivered_triples();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, [("accuracy".into(), 0.9, 7), ("loss".into(), 0.1, 1)]);
}

#[test]
fn metrics_come_from_the_environment_and_filters_apply() {
    let server = FakeServer::start();
    let output = collector(&server.endpoint())
        .env("SEXTANT_METRICS", "f1")
        .args(["--filter", r"(\w+): ([\d.]+)", "--", "sh", "-c"])
        .arg("echo 'f1: 0.75'; echo f1=0.1")
        .output()
        .unwrap();
    assert_output(&output, output.status.success(), "success");
    assert_eq!(server.delivered_triples(), [("f1".into(), 0.75, 1)]);
}

#[test]
fn a_command_killed_by_a_signal_exits_128_plus_the_signal() {
    let server = FakeServer::start();
    let output = collector(&server.endpoint())
        .args([
            "--metric",
            "loss",
            "--",
            "sh",
            "-c",
            "echo loss=1; kill -TERM $$",
        ])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(143), "exit 143");
    assert_eq!(server.delivered_triples(), [("loss".into(), 1.0, 1)]);
}

#[test]
fn retries_until_the_server_comes_up_and_loses_nothing() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let child = collector(&endpoint)
        .args([
            "--metric",
            "loss",
            "--flush-interval",
            "0.1",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!("{}; sleep 1; echo loss=99", print_losses(5)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let server = FakeServer::scripted(port, Vec::new(), Reply::ok());
    let output = child.wait_with_output().unwrap();
    assert_output(&output, output.status.success(), "success");
    let steps: Vec<i64> = server.delivered_triples().iter().map(|t| t.2).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(stderr.contains("could not reach"), "{stderr}");
    assert!(stderr.contains("delivered again"), "{stderr}");
}

#[test]
fn retries_503s_without_losing_points() {
    let unavailable = Reply::error(503, "unavailable", "store is closing");
    let server = FakeServer::scripted(0, vec![unavailable; 3], Reply::ok());
    let output = collector(&server.endpoint())
        .args(["--metric", "loss", "--", "sh", "-c", &print_losses(4)])
        .output()
        .unwrap();
    assert_output(&output, output.status.success(), "success");
    let steps: Vec<i64> = server.delivered_triples().iter().map(|t| t.2).collect();
    assert_eq!(steps, [1, 2, 3, 4]);
    assert_eq!(server.requests().len(), 4);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("503 (unavailable): store is closing"),
        "{stderr}"
    );
}

#[test]
fn a_401_stops_shipping_with_a_clear_message_and_keeps_the_points() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let refused = Reply::error(
        401,
        "unauthenticated",
        "token does not belong to trial exp-0001",
    );
    let server = FakeServer::scripted(0, Vec::new(), refused);
    let output = collector(&server.endpoint())
        .args(["--metric", "loss", "--flush-interval", "0.1", "--spool-dir"])
        .arg(&spool)
        .args(["--", "sh", "-c", "echo loss=1; sleep 1; echo loss=2"])
        .output()
        .unwrap();
    // The trial's own result is untouched.
    assert_output(&output, output.status.success(), "the command's exit code");
    assert_eq!(text(&output.stdout), "loss=1\nloss=2\n");
    assert_eq!(server.requests().len(), 1, "no retry after a 401");
    let stderr = text(&output.stderr);
    for expected in [
        "trial exp-0001: stopped sending metrics",
        "401 (unauthenticated): token does not belong to trial exp-0001",
        "2 metric point(s) were not delivered",
        &spool.display().to_string(),
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    assert_eq!(spooled_lines(&spool), 2);
}

#[test]
fn points_past_the_memory_bound_spill_to_disk_and_are_all_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let unavailable = Reply::error(503, "unavailable", "starting");
    let server = FakeServer::scripted(0, vec![unavailable; 5], Reply::ok());
    let mut child = collector(&server.endpoint())
        .args([
            "--metric",
            "loss",
            "--memory-points",
            "2",
            "--batch-points",
            "3",
        ])
        .arg("--spool-dir")
        .arg(&spool)
        .args(["--", "sh", "-c", &print_losses(40)])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Five 503s hold delivery back for at least 1.5 s of backoff: everything past the first two
    // points has to be on disk meanwhile.
    assert!(
        wait_for(Duration::from_secs(10), || spooled_lines(&spool) == 38),
        "spooled: {}",
        spooled_lines(&spool)
    );
    assert!(child.wait().unwrap().success());
    let delivered = server.delivered_triples();
    let steps: Vec<i64> = delivered.iter().map(|t| t.2).collect();
    assert_eq!(steps, (1..=40).collect::<Vec<_>>());
    assert!(
        delivered
            .iter()
            .all(|(_, value, step)| *value == *step as f64)
    );
    assert!(server.requests().iter().all(|r| {
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["observations"]
            .as_array()
            .unwrap()
            .len()
            <= 3
    }));
    assert!(!spool.exists(), "the spool is removed once it is delivered");
}

#[test]
fn a_closed_stdout_does_not_stop_the_trial_or_its_metrics() {
    let server = FakeServer::start();
    let mut child = collector(&server.endpoint())
        .args(["--metric", "loss", "--", "sh", "-c"])
        .arg(format!("sleep 0.3; {}", print_losses(2000)))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader of our stdout goes away before anything is written: writes fail with EPIPE.
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(server.delivered().len(), 2000);
}

#[test]
fn the_final_flush_gives_up_after_its_timeout_and_says_where_the_points_are() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    let output = collector(&format!("http://127.0.0.1:{port}"))
        .args(["--metric", "loss", "--flush-timeout", "0.5", "--spool-dir"])
        .arg(&spool)
        .args(["--", "sh", "-c", "echo loss=1; echo loss=2; exit 5"])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(5), "exit 5");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("2 metric point(s) were not delivered"),
        "{stderr}"
    );
    assert!(stderr.contains("within the flush timeout"), "{stderr}");
    assert!(stderr.contains(&spool.display().to_string()), "{stderr}");
    assert_eq!(spooled_lines(&spool), 2);
}

#[test]
fn missing_settings_exit_2_naming_the_fix() {
    let server = FakeServer::start();
    let output = collector(&server.endpoint())
        .env_remove("SEXTANT_TOKEN")
        .args(["--metric", "loss", "--", "true"])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(2), "exit 2");
    assert!(text(&output.stderr).contains("SEXTANT_TOKEN is not set"));

    let output = collector(&server.endpoint())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(2), "exit 2");
    assert!(text(&output.stderr).contains("--metric NAME"));
    assert!(text(&output.stderr).contains("SEXTANT_METRICS"));

    let output = collector("ftp://example.com")
        .args(["--metric", "loss", "--", "true"])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(2), "exit 2");
    assert!(text(&output.stderr).contains("http(s) base URL"));

    let output = collector(&server.endpoint())
        .args(["--metric", "loss", "--filter", "(x", "--", "true"])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(2), "exit 2");
    assert!(text(&output.stderr).contains("does not compile"));
    assert!(server.requests().is_empty());
}

#[test]
fn a_command_that_does_not_exist_exits_127() {
    let server = FakeServer::start();
    let output = collector(&server.endpoint())
        .args(["--metric", "loss", "--", "/nonexistent/train"])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(127), "exit 127");
    assert!(text(&output.stderr).contains("cannot run \"/nonexistent/train\""));
}

#[test]
fn help_lists_the_flags_and_variables() {
    let output = collector("http://unused").arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = text(&output.stdout);
    for flag in [
        "--metric",
        "--metrics",
        "--filter",
        "--file",
        "--format",
        "--pid",
        "--spool-dir",
        "--memory-points",
        "--batch-points",
        "--flush-interval",
        "--flush-timeout",
        "SEXTANT_ENDPOINT",
        "SEXTANT_TRIAL",
        "SEXTANT_EXPERIMENT",
        "SEXTANT_TOKEN",
        "SEXTANT_METRICS",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
}

//! File mode: the collector follows a metrics file while its writer runs.
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fixture::{FakeServer, assert_output, collector, text};

#[test]
fn follows_a_text_file_written_by_a_command_and_keeps_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.log");
    let server = FakeServer::start();
    // The file appears late, grows while the command runs, and ends without a newline.
    let script = format!(
        "sleep 0.3; echo 'epoch=1 loss=0.9' > {m}; echo hello; sleep 0.5; \
         echo 'epoch=2 loss=0.5' >> {m}; printf 'epoch=3 loss=0.25' >> {m}; exit 4",
        m = metrics.display()
    );
    let output = collector(&server.endpoint())
        .args(["--metric", "loss", "--file"])
        .arg(&metrics)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_output(&output, output.status.code() == Some(4), "exit 4");
    // The command's own output goes straight through; it is not parsed.
    assert_eq!(text(&output.stdout), "hello\n");
    assert_eq!(
        server.delivered_triples(),
        [
            ("loss".into(), 0.9, 1),
            ("loss".into(), 0.5, 2),
            ("loss".into(), 0.25, 3)
        ]
    );
}

#[test]
fn follows_json_lines_until_the_pid_is_gone_across_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.json");
    let server = FakeServer::start();
    // The writer is a process we start, and do not reap until the collector is done: the
    // collector must see it as gone while it is a zombie.
    let mut writer = Command::new("sleep").arg("3").spawn().unwrap();
    let collector_run = collector(&server.endpoint())
        .args(["--metrics", "loss,accuracy", "--format", "json", "--file"])
        .arg(&metrics)
        .args(["--pid", &writer.id().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let append = |line: &str| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics)
            .unwrap();
        writeln!(file, "{line}").unwrap();
    };
    std::thread::sleep(Duration::from_millis(300));
    append(r#"{"loss": 0.8, "accuracy": "0.5", "step": 10}"#);
    append(r#"{"loss": 0.6, "global_step": "20", "timestamp": 1638422847.5}"#);
    append("not json");
    // Several polls (every 200 ms) read those lines before the file is rewritten.
    std::thread::sleep(Duration::from_millis(1000));
    // Rewritten from scratch (a trial reopening its log with "w"): read again from the start.
    std::fs::write(&metrics, "{\"loss\": 0.4, \"step\": 30}\n").unwrap();
    let output = collector_run.wait_with_output().unwrap();
    writer.wait().unwrap();
    assert_output(&output, output.status.success(), "exit 0: all delivered");
    assert_eq!(
        server.delivered_triples(),
        [
            ("loss".into(), 0.8, 10),
            ("accuracy".into(), 0.5, 10),
            ("loss".into(), 0.6, 20),
            ("loss".into(), 0.4, 30),
        ]
    );
    assert_eq!(
        server.delivered()[2]["timestamp"].as_str(),
        Some("2021-12-02T05:27:27.5Z")
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("skipped 1 line(s) that were not JSON objects"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_never_written_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start();
    let output = collector(&server.endpoint())
        .args(["--metric", "loss", "--file"])
        .arg(dir.path().join("never.log"))
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_output(&output, output.status.success(), "the command's exit code");
    assert!(text(&output.stderr).contains("was never written"));
    assert!(server.requests().is_empty());
}

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::controller::driver::trial_name;
use crate::spec::{self, ParameterAssignment};
use crate::store::TrialRecord;

const RANDOM: &str = include_str!("../../../examples/digits/random.yaml");
const EXPERIMENT: &str = "digits-random";

/// Seconds after 2023-11-14T22:13:20Z.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn k8s_time(seconds: i64) -> Option<Time> {
    Some(Time(at(seconds)))
}

fn record(phase: ExperimentPhase, reason: &str, message: &str) -> ExperimentRecord {
    let checked = spec::check(RANDOM).unwrap();
    ExperimentRecord {
        name: EXPERIMENT.into(),
        experiment: checked.experiment,
        source_file: None,
        work_dir: ".".into(),
        seed: 42,
        phase,
        reason: reason.into(),
        message: message.into(),
        created: at(0),
        started: (phase != ExperimentPhase::Created).then(|| at(1)),
        completed: phase.is_finished().then(|| at(100)),
        trials_created: 0,
    }
}

fn running() -> ExperimentRecord {
    record(
        ExperimentPhase::Running,
        policy::reason::RUNNING,
        "Experiment is running",
    )
}

fn max_trials_reached() -> ExperimentRecord {
    let done = Completion::MaxTrialsReached;
    record(ExperimentPhase::Succeeded, done.reason(), done.message())
}

fn summary(name: &str, min: f64, max: f64, latest: f64) -> MetricSummary {
    MetricSummary {
        name: name.into(),
        min,
        max,
        latest,
        count: 3,
    }
}

/// Trial `index` taken through the driver's transitions to `end`: created at `10 * index`,
/// running a second later, ended four seconds after that. `accuracy` is its objective (max
/// strategy) and best value, reported last.
fn trial(index: u64, end: TrialState, accuracy: Option<f64>) -> TrialRecord {
    let t0 = 10 * index as i64;
    let mut trial = TrialRecord {
        name: trial_name(EXPERIMENT, index),
        experiment: EXPERIMENT.into(),
        index,
        uid: index,
        assignments: vec![
            ParameterAssignment {
                name: "lr".into(),
                value: format!("0.0{}", index + 1),
            },
            ParameterAssignment {
                name: "optimizer".into(),
                value: "adam".into(),
            },
        ],
        state: TrialState::Pending,
        reason: String::new(),
        message: String::new(),
        events: Vec::new(),
        created: at(t0),
        started: None,
        finished: None,
        log_path: Default::default(),
        pid: None,
        exit_code: None,
        gpus: Vec::new(),
        metrics: Vec::new(),
        objective: None,
    };
    trial.transition(
        TrialState::Pending,
        trial_reason::CREATED,
        "Trial is created",
        at(t0),
    );
    if end == TrialState::Pending {
        return trial;
    }
    trial.started = Some(at(t0 + 1));
    trial.transition(
        TrialState::Running,
        trial_reason::RUNNING,
        "Trial is running",
        at(t0 + 1),
    );
    if end == TrialState::Running {
        return trial;
    }
    let (reason, message) = match end {
        TrialState::Succeeded => (trial_reason::SUCCEEDED, "Trial has succeeded"),
        TrialState::Failed => (trial_reason::FAILED, "the trial exited with code 1"),
        TrialState::MetricsUnavailable => (
            trial_reason::METRICS_UNAVAILABLE,
            "the trial exited 0 but never reported the objective metric \"accuracy\"",
        ),
        TrialState::EarlyStopped => (trial_reason::EARLY_STOPPED, "medianstop: below the median"),
        TrialState::Killed => (trial_reason::KILLED, "stopped on request"),
        TrialState::Pending | TrialState::Running => unreachable!(),
    };
    if let Some(accuracy) = accuracy {
        trial.metrics = vec![
            summary("accuracy", 0.5, accuracy, accuracy),
            summary("loss", 0.25, 2.5, 0.25),
        ];
        trial.objective = Some(accuracy);
    }
    trial.finished = Some(at(t0 + 5));
    trial.transition(end, reason, message, at(t0 + 5));
    trial
}

fn kinds(conditions: &[Condition]) -> Vec<(&str, &str)> {
    conditions
        .iter()
        .map(|c| (c.condition_type.as_str(), c.status.as_str()))
        .collect()
}

fn find<'c>(conditions: &'c [Condition], kind: &str) -> &'c Condition {
    conditions
        .iter()
        .find(|c| c.condition_type == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {conditions:?}"))
}

/// What the controller reads back from the apiserver after writing `value`.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    serde_json::from_value(serde_json::to_value(value).unwrap()).unwrap()
}

#[test]
fn set_condition_appends_new_types_and_moves_changed_ones_to_the_end() {
    let mut conditions = Vec::new();
    set_condition(&mut conditions, "Created", "True", "C", "created", at(0));
    set_condition(&mut conditions, "Running", "True", "R", "running", at(1));
    assert_eq!(
        kinds(&conditions),
        [("Created", "True"), ("Running", "True")]
    );

    // The same again: nothing moves, no time changes.
    let before = conditions.clone();
    set_condition(&mut conditions, "Created", "True", "C", "created", at(5));
    assert_eq!(conditions, before);

    // Same status, another reason: updated and moved last, transition time kept.
    set_condition(&mut conditions, "Created", "True", "C2", "again", at(6));
    assert_eq!(
        kinds(&conditions),
        [("Running", "True"), ("Created", "True")]
    );
    let created = find(&conditions, "Created");
    assert_eq!(created.last_update_time, k8s_time(6));
    assert_eq!(created.last_transition_time, k8s_time(0));
    assert_eq!(created.reason, "C2");

    // Another status: both times move.
    set_condition(&mut conditions, "Running", "False", "R", "running", at(7));
    let running = find(&conditions, "Running");
    assert_eq!(running.last_update_time, k8s_time(7));
    assert_eq!(running.last_transition_time, k8s_time(7));
    assert_eq!(conditions.last().unwrap().condition_type, "Running");
}

#[test]
fn times_are_whole_seconds_like_the_apiserver_keeps_them() {
    let mut conditions = Vec::new();
    let fraction = at(3) + jiff::SignedDuration::from_millis(750);
    set_condition(&mut conditions, "Created", "True", "C", "created", fraction);
    assert_eq!(conditions[0].last_transition_time, k8s_time(3));
}

#[test]
fn experiment_goes_created_running_succeeded_with_katib_reasons_and_times() {
    let created = record(ExperimentPhase::Created, "", "");
    let s1 = experiment_status(&created, &[], None, at(0));
    assert_eq!(kinds(&s1.conditions), [("Created", "True")]);
    assert_eq!(s1.conditions[0].reason, "ExperimentCreated");
    assert_eq!(s1.conditions[0].message, "Experiment is created");
    assert_eq!(s1.start_time, k8s_time(0));
    assert_eq!(s1.completion_time, None);
    assert_eq!(s1.last_reconcile_time, k8s_time(0));

    let trials = [trial(0, TrialState::Running, None)];
    let s2 = experiment_status(&running(), &trials, Some(&round_trip(&s1)), at(2));
    assert_eq!(
        kinds(&s2.conditions),
        [("Created", "True"), ("Running", "True")]
    );
    assert_eq!(s2.conditions[0], s1.conditions[0], "Created is untouched");
    let running_condition = find(&s2.conditions, "Running");
    assert_eq!(running_condition.reason, "ExperimentRunning");
    assert_eq!(running_condition.last_transition_time, k8s_time(1));
    assert_eq!(s2.last_reconcile_time, k8s_time(2));

    let trials = [
        trial(0, TrialState::Succeeded, Some(0.9)),
        trial(1, TrialState::Failed, None),
    ];
    let s3 = experiment_status(
        &max_trials_reached(),
        &trials,
        Some(&round_trip(&s2)),
        at(101),
    );
    assert_eq!(
        kinds(&s3.conditions),
        [
            ("Created", "True"),
            ("Running", "False"),
            ("Succeeded", "True")
        ]
    );
    let running_condition = find(&s3.conditions, "Running");
    assert_eq!(
        (
            running_condition.reason.as_str(),
            running_condition.message.as_str()
        ),
        ("ExperimentRunning", "Experiment is running"),
        "Running keeps its reason when it turns False"
    );
    assert_eq!(running_condition.last_transition_time, k8s_time(100));
    let succeeded = s3.conditions.last().unwrap();
    assert_eq!(succeeded.reason, "ExperimentMaxTrialsReached");
    assert_eq!(
        succeeded.message,
        "Experiment has succeeded because max trial count has reached"
    );
    assert_eq!(succeeded.last_transition_time, k8s_time(100));
    assert_eq!(s3.start_time, k8s_time(0));
    assert_eq!(s3.completion_time, k8s_time(100));
    assert_eq!(s3.last_reconcile_time, k8s_time(101));

    // Nothing new in the store: the same status, lastReconcileTime included, so nothing to write.
    let again = experiment_status(
        &max_trials_reached(),
        &trials,
        Some(&round_trip(&s3)),
        at(500),
    );
    assert_eq!(again, s3);
}

#[test]
fn a_finished_experiment_seen_for_the_first_time_still_shows_that_it_ran() {
    let status = experiment_status(&max_trials_reached(), &[], None, at(300));
    assert_eq!(
        kinds(&status.conditions),
        [
            ("Created", "True"),
            ("Running", "False"),
            ("Succeeded", "True")
        ]
    );
    assert_eq!(status.conditions[0].last_transition_time, k8s_time(0));
    assert_eq!(status.conditions[2].last_transition_time, k8s_time(100));
}

#[test]
fn too_many_failures_ends_failed() {
    let done = Completion::TooManyFailures;
    let failed = record(ExperimentPhase::Failed, done.reason(), done.message());
    let status = experiment_status(&failed, &[], None, at(300));
    let last = status.conditions.last().unwrap();
    assert_eq!(
        (
            last.condition_type.as_str(),
            last.status.as_str(),
            last.reason.as_str()
        ),
        ("Failed", "True", "ExperimentFailed")
    );
    assert_eq!(
        last.message,
        "Experiment has failed because max failed count has reached"
    );
}

#[test]
fn a_stopped_experiment_shows_as_failed_with_reason_experiment_stopped() {
    let s1 = experiment_status(&running(), &[], None, at(2));
    let stopped = record(
        ExperimentPhase::Stopped,
        STOPPED_REASON,
        "Experiment was stopped on request",
    );
    let s2 = experiment_status(&stopped, &[], Some(&s1), at(101));
    assert_eq!(
        kinds(&s2.conditions),
        [
            ("Created", "True"),
            ("Running", "False"),
            ("Failed", "True")
        ]
    );
    let last = s2.conditions.last().unwrap();
    assert_eq!(last.reason, "ExperimentStopped");
    assert_eq!(last.message, "Experiment was stopped on request");
    assert_eq!(s2.completion_time, k8s_time(100));
}

#[test]
fn a_completed_experiment_given_more_trials_restarts_and_completes_again() {
    let done = experiment_status(&max_trials_reached(), &[], None, at(101));
    let mut again = running();
    again.started = Some(at(200));
    let restarted = experiment_status(&again, &[], Some(&round_trip(&done)), at(201));
    assert_eq!(
        kinds(&restarted.conditions),
        [
            ("Created", "True"),
            ("Restarting", "True"),
            ("Running", "True")
        ]
    );
    let restarting = find(&restarted.conditions, "Restarting");
    assert_eq!(
        (restarting.reason.as_str(), restarting.message.as_str()),
        ("ExperimentRestarting", "Experiment is restarted")
    );
    assert_eq!(
        find(&restarted.conditions, "Running").last_transition_time,
        k8s_time(200)
    );
    assert_eq!(restarted.completion_time, None);

    let mut finished = max_trials_reached();
    finished.completed = Some(at(300));
    let done_again = experiment_status(&finished, &[], Some(&round_trip(&restarted)), at(301));
    assert_eq!(
        kinds(&done_again.conditions),
        [
            ("Created", "True"),
            ("Running", "False"),
            ("Restarting", "False"),
            ("Succeeded", "True")
        ]
    );
    assert_eq!(done_again.completion_time, k8s_time(300));
}

#[test]
fn counters_and_lists_follow_the_trial_states() {
    let trials = [
        trial(0, TrialState::Succeeded, Some(0.8)),
        trial(1, TrialState::Succeeded, Some(0.9)),
        trial(2, TrialState::Failed, None),
        trial(3, TrialState::MetricsUnavailable, None),
        trial(4, TrialState::EarlyStopped, Some(0.5)),
        trial(5, TrialState::Killed, None),
        trial(6, TrialState::Running, None),
        trial(7, TrialState::Pending, None),
    ];
    let status = experiment_status(&running(), &trials, None, at(100));
    let names = |indices: &[u64]| -> Vec<String> {
        indices.iter().map(|&i| trial_name(EXPERIMENT, i)).collect()
    };
    assert_eq!(status.trials, 8);
    assert_eq!(
        (
            status.trials_succeeded,
            status.trials_failed,
            status.trial_metrics_unavailable,
            status.trials_early_stopped,
            status.trials_killed,
            status.trials_running,
            status.trials_pending
        ),
        (2, 1, 1, 1, 1, 1, 1)
    );
    assert_eq!(status.succeeded_trial_list, names(&[0, 1]));
    assert_eq!(status.failed_trial_list, names(&[2]));
    assert_eq!(status.metrics_unavailable_trial_list, names(&[3]));
    assert_eq!(status.early_stopped_trial_list, names(&[4]));
    assert_eq!(status.killed_trial_list, names(&[5]));
    assert_eq!(status.running_trial_list, names(&[6]));
    assert_eq!(status.pending_trial_list, names(&[7]));
}

#[test]
fn the_best_trial_follows_the_direction_and_carries_its_observation() {
    let trials = [
        trial(0, TrialState::Succeeded, Some(0.8)),
        trial(1, TrialState::Succeeded, Some(0.93)),
        trial(2, TrialState::Failed, None),
    ];
    let status = experiment_status(&running(), &trials, None, at(100));
    let best = status.current_optimal_trial.expect("a best trial");
    assert_eq!(best.best_trial_name, "digits-random-0002");
    assert_eq!(best.parameter_assignments, trials[1].assignments);
    let accuracy = &best.observation.metrics[0];
    assert_eq!(
        (
            accuracy.name.as_str(),
            accuracy.min.as_str(),
            accuracy.max.as_str()
        ),
        ("accuracy", "0.5", "0.93")
    );
    assert_eq!(accuracy.latest, "0.93");
    assert_eq!(best.observation.metrics[1].max, "2.5");

    let mut minimize = running();
    minimize
        .experiment
        .spec
        .objective
        .as_mut()
        .unwrap()
        .objective_type = "minimize".into();
    let status = experiment_status(&minimize, &trials, None, at(100));
    assert_eq!(
        status.current_optimal_trial.unwrap().best_trial_name,
        "digits-random-0001"
    );

    let nothing_yet = [
        trial(0, TrialState::Running, None),
        trial(1, TrialState::Failed, None),
    ];
    let status = experiment_status(&running(), &nothing_yet, None, at(100));
    assert_eq!(status.current_optimal_trial, None);
}

#[test]
fn metric_values_are_strings_go_reads_back() {
    assert_eq!(metric_value(0.93), "0.93");
    assert_eq!(metric_value(0.0), "0");
    assert_eq!(metric_value(-12.5), "-12.5");
    assert_eq!(metric_value(1e-7), "1e-7");
    assert_eq!(metric_value(3.5e20), "3.5e20");
}

#[test]
fn trial_status_for_each_state() {
    use TrialState::*;
    let cases = [
        (Pending, vec![("Created", "True")], "TrialCreated"),
        (
            Running,
            vec![("Created", "True"), ("Running", "True")],
            "TrialRunning",
        ),
        (
            Succeeded,
            vec![
                ("Created", "True"),
                ("Running", "False"),
                ("Succeeded", "True"),
            ],
            "TrialSucceeded",
        ),
        (
            Failed,
            vec![
                ("Created", "True"),
                ("Running", "False"),
                ("Failed", "True"),
            ],
            "TrialFailed",
        ),
        (
            MetricsUnavailable,
            vec![
                ("Created", "True"),
                ("Running", "False"),
                ("MetricsUnavailable", "True"),
            ],
            "TrialMetricsUnavailable",
        ),
        (
            EarlyStopped,
            vec![
                ("Created", "True"),
                ("Running", "False"),
                ("EarlyStopped", "True"),
            ],
            "TrialEarlyStopped",
        ),
        (
            Killed,
            vec![
                ("Created", "True"),
                ("Running", "False"),
                ("Killed", "True"),
            ],
            "TrialKilled",
        ),
    ];
    for (state, expected, reason) in cases {
        let record = trial(1, state, (state == Succeeded).then_some(0.9));
        let status = trial_status(&record, None, at(100));
        assert_eq!(kinds(&status.conditions), expected, "{state}");
        let last = status.conditions.last().unwrap();
        assert_eq!(last.reason, reason, "{state}");
        assert_eq!(last.message, record.message, "{state}");
        assert_eq!(status.start_time, k8s_time(10), "{state}");
        if state.is_active() {
            assert_eq!(status.completion_time, None, "{state}");
        } else {
            assert_eq!(status.completion_time, k8s_time(15), "{state}");
            assert_eq!(last.last_transition_time, k8s_time(15), "{state}");
            let running = find(&status.conditions, "Running");
            assert_eq!(running.reason, "TrialRunning", "{state}");
            assert_eq!(running.last_transition_time, k8s_time(15), "{state}");
        }
    }
}

#[test]
fn trial_status_follows_the_trial_and_recomputes_to_itself() {
    let pending = trial(0, TrialState::Pending, None);
    let s1 = trial_status(&pending, None, at(0));
    let s2 = trial_status(
        &trial(0, TrialState::Running, None),
        Some(&round_trip(&s1)),
        at(2),
    );
    assert_eq!(s2.conditions[0], s1.conditions[0]);
    assert_eq!(
        find(&s2.conditions, "Running").last_transition_time,
        k8s_time(1)
    );
    let done = trial(0, TrialState::Succeeded, Some(0.9));
    let s3 = trial_status(&done, Some(&round_trip(&s2)), at(6));
    assert_eq!(
        kinds(&s3.conditions),
        [
            ("Created", "True"),
            ("Running", "False"),
            ("Succeeded", "True")
        ]
    );
    assert_eq!(
        find(&s3.conditions, "Running").last_transition_time,
        k8s_time(5)
    );
    let observation = s3.observation.as_ref().unwrap();
    assert_eq!(observation.metrics.len(), 2);
    assert_eq!(observation.metrics[0].max, "0.9");
    assert_eq!(s3.last_reconcile_time, k8s_time(6));
    assert_eq!(trial_status(&done, Some(&round_trip(&s3)), at(60)), s3);
}

#[test]
fn a_trial_that_never_started_has_no_running_condition() {
    let mut record = trial(0, TrialState::Pending, None);
    record.finished = Some(at(2));
    record.transition(
        TrialState::Failed,
        trial_reason::FAILED,
        "could not start: no such image",
        at(2),
    );
    let status = trial_status(&record, None, at(3));
    assert_eq!(
        kinds(&status.conditions),
        [("Created", "True"), ("Failed", "True")]
    );
    assert_eq!(status.observation, None);
}

fn owner() -> (ExperimentResource, CheckedExperiment) {
    let checked = spec::check(RANDOM).unwrap();
    let mut owner = ExperimentResource::new(EXPERIMENT, checked.experiment.spec.clone());
    owner.metadata.namespace = Some("kubeflow".into());
    owner.metadata.uid = Some("6c1f-uid".into());
    owner.metadata.labels = Some([("team".to_string(), "vision".to_string())].into());
    (owner, checked)
}

#[test]
fn the_trial_resource_has_katib_shape_and_keeps_the_workload_verbatim() {
    let (owner, checked) = owner();
    let record = trial(2, TrialState::Pending, None);
    let workload = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "digits-random-0003", "namespace": "kubeflow", "labels": {"x": "y"}},
        "spec": {"template": {"spec": {"containers": [{"name": "training-container", "image": "i"}]}}}
    });
    let resource = trial_resource(&owner, &checked, &record, &workload).unwrap();
    let expected = json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": "digits-random-0003",
            "namespace": "kubeflow",
            "labels": {"katib.kubeflow.org/experiment": "digits-random", "team": "vision"},
            "ownerReferences": [{
                "apiVersion": "kubeflow.org/v1beta1",
                "kind": "Experiment",
                "name": "digits-random",
                "uid": "6c1f-uid",
                "controller": true,
                "blockOwnerDeletion": true
            }],
            "finalizers": ["sextant.io/observation-log"]
        },
        "spec": {
            "objective": {
                "type": "maximize",
                "objectiveMetricName": "accuracy",
                "additionalMetricNames": ["loss"],
                "metricStrategies": [
                    {"name": "accuracy", "value": "max"},
                    {"name": "loss", "value": "min"}
                ]
            },
            "parameterAssignments": [
                {"name": "lr", "value": "0.03"},
                {"name": "optimizer", "value": "adam"}
            ],
            "runSpec": workload,
            "metricsCollector": {"collector": {"kind": "StdOut"}},
            "primaryContainerName": "training-container",
            "successCondition": "status.conditions.#(type==\"Complete\")#|#(status==\"True\")#",
            "failureCondition": "status.conditions.#(type==\"Failed\")#|#(status==\"True\")#"
        }
    });
    assert_eq!(serde_json::to_value(&resource).unwrap(), expected);
    assert_eq!(resource.spec.run_spec.as_ref(), Some(&workload));
}

#[test]
fn retain_and_template_conditions_pass_to_the_trial() {
    let (owner, mut checked) = owner();
    checked.template.retain = true;
    checked.template.success_condition = Some("status.[@this].#(phase==\"Succeeded\")#".into());
    let resource = trial_resource(
        &owner,
        &checked,
        &trial(0, TrialState::Pending, None),
        &json!({}),
    )
    .unwrap();
    assert!(resource.spec.retain_run);
    assert_eq!(
        resource.spec.success_condition.as_deref(),
        Some("status.[@this].#(phase==\"Succeeded\")#")
    );
}

#[test]
fn owner_references_need_the_uid_the_apiserver_gives() {
    let (mut owner, checked) = owner();
    let record = trial(0, TrialState::Pending, None);
    let mut resource = trial_resource(&owner, &checked, &record, &json!({})).unwrap();
    assert_eq!(
        workload_owner_reference(&resource),
        Err(NoUid {
            kind: "Trial",
            name: "digits-random-0001".into()
        }),
        "a Trial not yet created has no uid"
    );
    resource.metadata.uid = Some("trial-uid".into());
    let reference = workload_owner_reference(&resource).unwrap();
    assert_eq!(
        serde_json::to_value(&reference).unwrap(),
        json!({
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Trial",
            "name": "digits-random-0001",
            "uid": "trial-uid",
            "controller": true,
            "blockOwnerDeletion": true
        })
    );

    owner.metadata.uid = None;
    let error = trial_resource(&owner, &checked, &record, &json!({})).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Experiment \"digits-random\" has no metadata.uid")
    );
}

#[test]
fn experiment_status_serialises_with_katib_field_names() {
    let trials = [
        trial(0, TrialState::Succeeded, Some(0.9)),
        trial(1, TrialState::MetricsUnavailable, None),
    ];
    let status = experiment_status(&max_trials_reached(), &trials, None, at(101));
    // Katib's ExperimentStatus as `kubectl get experiment -o json` prints it.
    let expected = json!({
        "startTime": "2023-11-14T22:13:20Z",
        "completionTime": "2023-11-14T22:15:00Z",
        "lastReconcileTime": "2023-11-14T22:15:01Z",
        "conditions": [
            {
                "type": "Created", "status": "True",
                "reason": "ExperimentCreated", "message": "Experiment is created",
                "lastUpdateTime": "2023-11-14T22:13:20Z",
                "lastTransitionTime": "2023-11-14T22:13:20Z"
            },
            {
                "type": "Running", "status": "False",
                "reason": "ExperimentRunning", "message": "Experiment is running",
                "lastUpdateTime": "2023-11-14T22:15:00Z",
                "lastTransitionTime": "2023-11-14T22:15:00Z"
            },
            {
                "type": "Succeeded", "status": "True",
                "reason": "ExperimentMaxTrialsReached",
                "message": "Experiment has succeeded because max trial count has reached",
                "lastUpdateTime": "2023-11-14T22:15:00Z",
                "lastTransitionTime": "2023-11-14T22:15:00Z"
            }
        ],
        "currentOptimalTrial": {
            "bestTrialName": "digits-random-0001",
            "parameterAssignments": [
                {"name": "lr", "value": "0.01"},
                {"name": "optimizer", "value": "adam"}
            ],
            "observation": {
                "metrics": [
                    {"name": "accuracy", "min": "0.5", "max": "0.9", "latest": "0.9"},
                    {"name": "loss", "min": "0.25", "max": "2.5", "latest": "0.25"}
                ]
            }
        },
        "succeededTrialList": ["digits-random-0001"],
        "metricsUnavailableTrialList": ["digits-random-0002"],
        "trials": 2,
        "trialsSucceeded": 1,
        "trialMetricsUnavailable": 1
    });
    assert_eq!(serde_json::to_value(&status).unwrap(), expected);
}

#[test]
fn trial_status_serialises_with_katib_field_names() {
    let status = trial_status(&trial(0, TrialState::Failed, None), None, at(6));
    let expected = json!({
        "startTime": "2023-11-14T22:13:20Z",
        "completionTime": "2023-11-14T22:13:25Z",
        "lastReconcileTime": "2023-11-14T22:13:26Z",
        "conditions": [
            {
                "type": "Created", "status": "True",
                "reason": "TrialCreated", "message": "Trial is created",
                "lastUpdateTime": "2023-11-14T22:13:20Z",
                "lastTransitionTime": "2023-11-14T22:13:20Z"
            },
            {
                "type": "Running", "status": "False",
                "reason": "TrialRunning", "message": "Trial is running",
                "lastUpdateTime": "2023-11-14T22:13:25Z",
                "lastTransitionTime": "2023-11-14T22:13:25Z"
            },
            {
                "type": "Failed", "status": "True",
                "reason": "TrialFailed", "message": "the trial exited with code 1",
                "lastUpdateTime": "2023-11-14T22:13:25Z",
                "lastTransitionTime": "2023-11-14T22:13:25Z"
            }
        ]
    });
    assert_eq!(serde_json::to_value(&status).unwrap(), expected);
}

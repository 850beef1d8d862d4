//! The suggestion API driven through its router (no socket).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

async fn post(path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let response = router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

fn request(algorithm: &str, settings: Value, trials: Value, count: usize) -> Value {
    json!({
        "experiment": {
            "name": "api-test",
            "spec": {
                "parameters": [
                    {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"}},
                    {"name": "units", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}},
                    {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}}
                ],
                "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings}
            }
        },
        "trials": trials,
        "currentRequestNumber": count
    })
}

fn grid_request(trials: Value, count: usize) -> Value {
    let mut body = request("grid", json!([]), trials, count);
    body["experiment"]["spec"]["parameters"][0]["feasibleSpace"] =
        json!({"min": "0.1", "max": "0.2", "step": "0.1"});
    body
}

fn values(assignment: &Value) -> Vec<String> {
    assignment["parameterAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn random_suggestions_are_katib_strings_inside_the_space_and_continue_with_state() {
    let body = request(
        "random",
        json!([{"name": "random_state", "value": "5"}]),
        json!([]),
        3,
    );
    let (status, reply) = post("/v1/suggestions", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let assignments = reply["assignments"].as_array().unwrap();
    assert_eq!(assignments.len(), 3);
    for assignment in assignments {
        let v = values(assignment);
        let lr: f64 = v[0].parse().unwrap();
        assert!((0.001..=0.1).contains(&lr), "{v:?}");
        assert!(v[1] == "1" || v[1] == "2", "{v:?}");
        assert!(v[2] == "sgd" || v[2] == "adam", "{v:?}");
        assert_eq!(assignment["parameterAssignments"][0]["name"], "lr");
    }
    assert_eq!(reply["exhausted"], false);

    // Same request again: same answer (stateless, seeded).
    let (_, again) = post("/v1/suggestions", body.to_string()).await;
    assert_eq!(again["assignments"], reply["assignments"]);

    // With the returned state and the first three as running trials, the next ones differ.
    let trials: Vec<Value> = assignments
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"name": format!("t{i}"), "parameterAssignments": a["parameterAssignments"], "condition": "Running"}))
        .collect();
    let mut next = request(
        "random",
        json!([{"name": "random_state", "value": "5"}]),
        json!(trials),
        2,
    );
    next["state"] = reply["state"].clone();
    let (status, more) = post("/v1/suggestions", next.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{more}");
    for assignment in more["assignments"].as_array().unwrap() {
        assert!(!assignments.contains(assignment), "repeated {assignment}");
    }
}

#[tokio::test]
async fn grid_skips_trials_already_run_and_says_when_it_is_exhausted() {
    // lr ∈ {0.1, 0.2} × units ∈ {1, 2} × opt ∈ {sgd, adam}: 8 points; 6 already ran.
    let (_, first) = post("/v1/suggestions", grid_request(json!([]), 8).to_string()).await;
    let all = first["assignments"].as_array().unwrap().clone();
    assert_eq!(all.len(), 8);
    let trials: Vec<Value> = all[..6]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            json!({
                "name": format!("t{i}"),
                "parameterAssignments": a["parameterAssignments"],
                "condition": if i % 2 == 0 { "Succeeded" } else { "Failed" },
                "observation": {"metrics": [{"name": "accuracy", "value": "0.5"}]}
            })
        })
        .collect();
    let (status, reply) = post(
        "/v1/suggestions",
        grid_request(json!(trials), 5).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["assignments"].as_array().unwrap(), &all[6..].to_vec());
    assert_eq!(reply["exhausted"], true);
}

#[tokio::test]
async fn validate_accepts_a_good_request() {
    let body = request("sobol", json!([]), json!([]), 1);
    let (status, reply) = post("/v1/suggestions/validate", body.to_string()).await;
    assert_eq!((status, reply), (StatusCode::OK, json!({"valid": true})));
}

async fn assert_error(body: Value, field: &str, needle: &str) {
    for path in ["/v1/suggestions", "/v1/suggestions/validate"] {
        let (status, reply) = post(path, body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_argument", "{reply}");
        assert_eq!(reply["error"]["field"], field, "{path}: {reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {reply}"
        );
    }
}

#[tokio::test]
async fn errors_name_the_field() {
    let mut bad_max = request("random", json!([]), json!([]), 1);
    bad_max["experiment"]["spec"]["parameters"][0]["feasibleSpace"]["max"] = json!("lots");
    assert_error(
        bad_max,
        "experiment.spec.parameters[0].feasibleSpace.max",
        "lots",
    )
    .await;

    assert_error(
        request("annealing", json!([]), json!([]), 1),
        "experiment.spec.algorithm.algorithmName",
        "accepted",
    )
    .await;
    assert_error(
        request(
            "random",
            json!([{"name": "random_state", "value": "x"}]),
            json!([]),
            1,
        ),
        "experiment.spec.algorithm.algorithmSettings[0].value",
        "non-negative integer",
    )
    .await;
    assert_error(
        request(
            "random",
            json!([]),
            json!([{"name": "t", "parameterAssignments": [], "condition": "Exploded"}]),
            1,
        ),
        "trials[0].condition",
        "Succeeded",
    )
    .await;
    assert_error(
        request("random", json!([]), json!([{"name": "t", "parameterAssignments": [{"name": "lr", "value": "9"}], "condition": "Running"}]), 1),
        "trials[0].parameterAssignments",
        "lr",
    )
    .await;
    assert_error(
        request("random", json!([]), json!([]), 5000),
        "currentRequestNumber",
        "at most",
    )
    .await;

    let mut doubles_without_step = request("grid", json!([]), json!([]), 1);
    doubles_without_step["experiment"]["spec"]["objective"]["type"] = json!("maximize");
    assert_error(
        doubles_without_step,
        "experiment.spec.algorithm.algorithmName",
        "step",
    )
    .await;

    let mut bad_metric = grid_request(
        json!([{"name": "t", "parameterAssignments": [{"name": "lr", "value": "0.1"}, {"name": "units", "value": "1"}, {"name": "opt", "value": "sgd"}],
                "condition": "Succeeded", "observation": {"metrics": [{"name": "accuracy", "value": "NaN"}]}}]),
        1,
    );
    bad_metric["currentRequestNumber"] = json!(1);
    assert_error(
        bad_metric,
        "trials[0].observation.metrics[0].value",
        "finite",
    )
    .await;
}

#[tokio::test]
async fn body_errors_name_the_field_or_the_body() {
    let (status, reply) = post("/v1/suggestions", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["field"], "body", "{reply}");

    let mut wrong_type = request("random", json!([]), json!([]), 1);
    wrong_type["currentRequestNumber"] = json!("three");
    let (status, reply) = post("/v1/suggestions", wrong_type.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["field"], "currentRequestNumber", "{reply}");

    let mut unknown = request("random", json!([]), json!([]), 1);
    unknown["currentRequestNumbr"] = json!(1);
    let (status, reply) = post("/v1/suggestions", unknown.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("currentRequestNumbr"),
        "{reply}"
    );
}

#[tokio::test]
async fn several_problems_are_all_reported() {
    let mut body = request("annealing", json!([]), json!([]), 1);
    body["experiment"]["spec"]["objective"]["type"] = json!("sideways");
    let (status, reply) = post("/v1/suggestions", body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let details = reply["error"]["details"].as_array().unwrap();
    let fields: Vec<&str> = details
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"experiment.spec.algorithm.algorithmName"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"experiment.spec.objective.type"),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_state_from_another_engine_is_refused_by_name() {
    let mut body = request("random", json!([]), json!([]), 1);
    body["state"] = json!({"something": "else"});
    let (status, reply) = post("/v1/suggestions", body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["error"]["field"], "state", "{reply}");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, _) = post("/v1/suggestions", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn bayesian_optimisation_is_reachable_and_a_batch_is_distinct() {
    // 12 finished trials on a smooth function of lr, then a batch of 3 with one running trial.
    let mut trials = Vec::new();
    for i in 0..12 {
        let lr = 0.001 + 0.008 * f64::from(i);
        let units = 1 + i % 2;
        let accuracy = 1.0 - (lr - 0.05).abs();
        trials.push(json!({
            "name": format!("t{i}"),
            "parameterAssignments": [
                {"name": "lr", "value": lr.to_string()},
                {"name": "units", "value": units.to_string()},
                {"name": "opt", "value": if i % 3 == 0 { "sgd" } else { "adam" }}
            ],
            "condition": "Succeeded",
            "observation": {"metrics": [{"name": "accuracy", "value": accuracy.to_string()}]}
        }));
    }
    trials.push(json!({
        "name": "running",
        "parameterAssignments": [{"name": "lr", "value": "0.05"}, {"name": "units", "value": "1"}, {"name": "opt", "value": "adam"}],
        "condition": "Running"
    }));
    let body = request(
        "bayesianoptimization",
        json!([{"name": "random_state", "value": "1"}, {"name": "n_initial_points", "value": "5"}]),
        json!(trials),
        3,
    );
    let (status, reply) = post("/v1/suggestions", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let assignments = reply["assignments"].as_array().unwrap();
    assert_eq!(assignments.len(), 3);
    let distinct: std::collections::HashSet<String> =
        assignments.iter().map(|a| a.to_string()).collect();
    assert_eq!(distinct.len(), 3, "a batch is distinct: {assignments:?}");
    for assignment in assignments {
        let v = values(assignment);
        assert!(
            v[1] == "1" || v[1] == "2",
            "integers stay on the grid: {v:?}"
        );
        assert!(v[2] == "sgd" || v[2] == "adam", "{v:?}");
    }
    assert!(
        !reply["state"].is_null(),
        "the engine keeps state between requests"
    );

    let bad = request(
        "bayesianoptimization",
        json!([{"name": "base_estimator", "value": "RF"}]),
        json!([]),
        1,
    );
    let (status, reply) = post("/v1/suggestions/validate", bad.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply["error"]["field"], "experiment.spec.algorithm.algorithmSettings[0].value",
        "{reply}"
    );
}

#[tokio::test]
async fn tpe_multivariate_tpe_and_cmaes_are_reachable_and_refuse_bad_settings_by_field() {
    let mut trials = Vec::new();
    for i in 0..12 {
        let lr = 0.001 + 0.008 * f64::from(i);
        trials.push(json!({
            "name": format!("t{i}"),
            "parameterAssignments": [
                {"name": "lr", "value": lr.to_string()},
                {"name": "units", "value": (1 + i % 2).to_string()},
                {"name": "opt", "value": if i % 3 == 0 { "sgd" } else { "adam" }}
            ],
            "condition": "Succeeded",
            "observation": {"metrics": [{"name": "accuracy", "value": (1.0 - (lr - 0.05).abs()).to_string()}]}
        }));
    }
    trials.push(json!({
        "name": "running",
        "parameterAssignments": [{"name": "lr", "value": "0.05"}, {"name": "units", "value": "1"}, {"name": "opt", "value": "adam"}],
        "condition": "Running"
    }));
    let taken: std::collections::HashSet<Vec<String>> = trials.iter().map(values).collect();
    for (algorithm, bad_setting) in [
        ("tpe", json!({"name": "gamma", "value": "1.5"})),
        (
            "multivariate-tpe",
            json!({"name": "gamma", "value": "0.25"}),
        ),
        ("cmaes", json!({"name": "sigma", "value": "2"})),
    ] {
        let body = request(
            algorithm,
            json!([{"name": "random_state", "value": "1"}]),
            json!(trials),
            3,
        );
        let (status, reply) = post("/v1/suggestions", body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{algorithm}: {reply}");
        let assignments = reply["assignments"].as_array().unwrap();
        assert!(!assignments.is_empty(), "{algorithm}: {reply}");
        let distinct: std::collections::HashSet<Vec<String>> =
            assignments.iter().map(values).collect();
        assert_eq!(
            distinct.len(),
            assignments.len(),
            "{algorithm}: {assignments:?}"
        );
        for v in &distinct {
            assert!(
                !taken.contains(v),
                "{algorithm} repeated a taken point: {v:?}"
            );
            assert!(v[1] == "1" || v[1] == "2", "{algorithm}: {v:?}");
        }
        // The state comes back and is accepted on the next request.
        let mut again = body.clone();
        again["state"] = reply["state"].clone();
        let (status, reply) = post("/v1/suggestions", again.to_string()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{algorithm} with its state: {reply}"
        );

        let bad = request(algorithm, json!([bad_setting]), json!([]), 1);
        let (status, reply) = post("/v1/suggestions/validate", bad.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{algorithm}: {reply}");
        assert!(
            reply["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .starts_with("experiment.spec.algorithm.algorithmSettings[0]"),
            "{algorithm}: {reply}"
        );
    }
}

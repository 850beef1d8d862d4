//! CRD tests: Katib's names, columns and subresources; the schema is structural and accepts
//! Katib's and Sextant's example Experiments; free-form objects keep their fields.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

fn crd_json(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    serde_json::to_value(crd).unwrap()
}

fn schema(kind: &str) -> Value {
    crd_json(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Checks `value` against a structural `schema` the way the apiserver's validation does for the
/// parts Sextant uses (types, nullable, items, maps, preserve-unknown-fields), and, stricter than
/// the apiserver (which would prune them), reports unknown fields: a misspelt field in an example
/// is a bug here.
fn check(value: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
    if value.is_null() {
        if schema["nullable"] != json!(true) && !preserve {
            problems.push(format!("{path}: null where the schema does not allow it"));
        }
        return;
    }
    let Some(expected) = schema["type"].as_str() else {
        if !preserve {
            problems.push(format!("{path}: schema without a type"));
        }
        return;
    };
    let ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => {
            problems.push(format!("{path}: unexpected schema type {other}"));
            return;
        }
    };
    if !ok {
        problems.push(format!("{path}: expected {expected}, found {value}"));
        return;
    }
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                // The apiserver checks these itself; CRD schemas leave them out.
                if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&name.as_str()) {
                    continue;
                }
                let field_path = format!("{path}.{name}");
                if let Some(field_schema) = schema["properties"].get(name) {
                    check(field, field_schema, &field_path, problems);
                } else if let Some(values) = schema.get("additionalProperties") {
                    check(field, values, &field_path, problems);
                } else if !preserve {
                    problems.push(format!("{field_path}: unknown field"));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(item, &schema["items"], &format!("{path}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

fn problems(value: &Value, schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check(value, schema, "", &mut problems);
    problems
}

/// Every Experiment document in Sextant's examples and Katib's random and TPE examples.
fn example_experiments() -> Vec<(PathBuf, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("examples/digits"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.push(root.join("tests/data/katib-random.yaml"));
    files.push(root.join("tests/data/katib-tpe.yaml"));
    files.push(root.join("tests/data/katib-multivariate-tpe.yaml"));
    let mut experiments = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        experiments.extend(
            documents
                .into_iter()
                .filter(|d| d["kind"] == "Experiment")
                .map(|d| (file.clone(), d)),
        );
    }
    assert!(experiments.len() >= 8, "examples not found");
    experiments
}

#[test]
fn names_follow_katib() {
    for (kind, plural, short) in [
        ("Experiment", "experiments", "exp"),
        ("Trial", "trials", "tr"),
        ("Suggestion", "suggestions", "sugg"),
    ] {
        let crd = crd_json(kind);
        assert_eq!(crd["metadata"]["name"], format!("{plural}.kubeflow.org"));
        assert_eq!(crd["spec"]["group"], "kubeflow.org");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let names = &crd["spec"]["names"];
        assert_eq!(names["plural"], plural);
        assert_eq!(names["singular"], plural.trim_end_matches('s'));
        assert_eq!(names["categories"], json!(["all", "kubeflow", "katib"]));
        // Katib has none; Sextant's are additions (`kubectl get exp,tr`).
        assert_eq!(names["shortNames"], json!([short]), "{kind}: {names}");
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["name"], "v1beta1");
        assert_eq!(versions[0]["served"], true);
        assert_eq!(versions[0]["storage"], true);
    }
}

/// A printer column: name, type, JSON path.
type Column = (&'static str, &'static str, &'static str);

#[test]
fn status_subresource_and_katib_printer_columns() {
    let conditions = [
        ("Type", "string", ".status.conditions[-1:].type"),
        ("Status", "string", ".status.conditions[-1:].status"),
    ];
    let age = ("Age", "date", ".metadata.creationTimestamp");
    let suggestion = [
        conditions[0],
        conditions[1],
        ("Requested", "string", ".spec.requests"),
        ("Assigned", "string", ".status.suggestionCount"),
        age,
    ];
    let expected: [(&str, &[Column]); 3] = [
        ("Experiment", &[conditions[0], conditions[1], age]),
        ("Trial", &[conditions[0], conditions[1], age]),
        ("Suggestion", &suggestion),
    ];
    for (kind, columns) in expected {
        let version = &crd_json(kind)["spec"]["versions"][0];
        assert_eq!(version["subresources"], json!({"status": {}}), "{kind}");
        let found: Vec<(&str, &str, &str)> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap(),
                    c["jsonPath"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(found, columns, "{kind}");
    }
}

/// The apiserver refuses a CRD whose schema is not structural: every field needs a type unless it
/// preserves unknown fields. Nothing is defaulted by the apiserver either.
#[test]
fn schemas_are_structural_without_defaults() {
    fn walk(schema: &Value, path: &str, problems: &mut Vec<String>) {
        let typed = schema.get("type").is_some();
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
        if !typed && !preserve {
            problems.push(format!("{path}: no type"));
        }
        for key in ["default", "anyOf", "oneOf", "allOf", "$ref"] {
            if schema.get(key).is_some() {
                problems.push(format!("{path}: has {key}"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, field) in properties {
                walk(field, &format!("{path}.{name}"), problems);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = schema.get(key).filter(|s| s.is_object()) {
                walk(inner, &format!("{path}.{key}"), problems);
            }
        }
    }
    for kind in ["Experiment", "Trial", "Suggestion"] {
        let mut problems = Vec::new();
        walk(&schema(kind), kind, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn example_experiments_validate_and_deserialize() {
    let schema = schema("Experiment");
    for (file, document) in example_experiments() {
        let found = problems(&document, &schema);
        assert!(found.is_empty(), "{}: {found:#?}", file.display());
        let resource: ExperimentResource = serde_json::from_value(document.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(resource.spec.trial_template.is_some(), "{}", file.display());
    }
}

#[test]
fn string_or_number_values_validate_either_way() {
    let schema = schema("Experiment");
    let document = |min: Value, setting: Value| {
        json!({
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "numbers"},
            "spec": {
                "algorithm": {
                    "algorithmName": "random",
                    "algorithmSettings": [{"name": "random_state", "value": setting}]
                },
                "parameters": [{
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": min, "max": "0.3", "list": [1, "2", 0.5]}
                }]
            }
        })
    };
    for document in [
        document(json!("0.01"), json!("42")),
        document(json!(0.01), json!(42)),
    ] {
        assert_eq!(problems(&document, &schema), Vec::<String>::new());
        let resource: ExperimentResource = serde_json::from_value(document).unwrap();
        let space = &resource.spec.parameters[0].feasible_space;
        assert_eq!(space.min.as_deref(), Some("0.01"));
        assert_eq!(space.list, ["1", "2", "0.5"]);
        let setting = &resource.spec.algorithm.unwrap().algorithm_settings[0];
        assert_eq!(setting.value, "42");
    }
}

#[test]
fn free_form_objects_keep_unknown_fields() {
    let experiment = schema("Experiment");
    let template = &experiment["properties"]["spec"]["properties"]["trialTemplate"];
    let trial = schema("Trial");
    for field in [
        &template["properties"]["trialSpec"],
        &trial["properties"]["spec"]["properties"]["runSpec"],
    ] {
        assert_eq!(field["type"], "object");
        assert_eq!(field["x-kubernetes-preserve-unknown-fields"], true);
    }

    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"anyField": {"nested": [1, 2]}, "template": {"spec": {"containers": []}}}
    });
    let experiment_document = json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "free-form"},
        "spec": {"trialTemplate": {"trialSpec": job}}
    });
    assert_eq!(
        problems(&experiment_document, &experiment),
        Vec::<String>::new()
    );
    let resource: ExperimentResource = serde_json::from_value(experiment_document).unwrap();
    let template = resource.spec.trial_template.unwrap();
    assert_eq!(template.trial_spec.unwrap(), job);

    let trial_document = json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {"name": "free-form-1"},
        "spec": {"runSpec": job, "parameterAssignments": [{"name": "lr", "value": "0.1"}]}
    });
    assert_eq!(problems(&trial_document, &trial), Vec::<String>::new());
    let resource: TrialResource = serde_json::from_value(trial_document.clone()).unwrap();
    assert_eq!(resource.spec.run_spec.as_ref(), Some(&job));
    assert_eq!(
        serde_json::to_value(&resource).unwrap()["spec"],
        trial_document["spec"]
    );
}

#[test]
fn statuses_use_katib_field_names() {
    let status = schema("Experiment")["properties"]["status"]["properties"].clone();
    for field in [
        "startTime",
        "completionTime",
        "lastReconcileTime",
        "conditions",
        "currentOptimalTrial",
        "pendingTrialList",
        "runningTrialList",
        "succeededTrialList",
        "failedTrialList",
        "killedTrialList",
        "earlyStoppedTrialList",
        "metricsUnavailableTrialList",
        "trials",
        "trialsPending",
        "trialsRunning",
        "trialsSucceeded",
        "trialsFailed",
        "trialsKilled",
        "trialsEarlyStopped",
        "trialMetricsUnavailable",
    ] {
        assert!(status.get(field).is_some(), "Experiment status.{field}");
    }
    let condition = &status["conditions"]["items"]["properties"];
    for field in [
        "type",
        "status",
        "reason",
        "message",
        "lastUpdateTime",
        "lastTransitionTime",
    ] {
        assert!(condition.get(field).is_some(), "condition.{field}");
    }
    let metric = &status["currentOptimalTrial"]["properties"]["observation"]["properties"]["metrics"]
        ["items"]["properties"];
    for field in ["name", "min", "max", "latest"] {
        assert!(metric.get(field).is_some(), "metric.{field}");
    }

    let suggestion = schema("Suggestion")["properties"].clone();
    for field in ["algorithm", "earlyStopping", "requests", "resumePolicy"] {
        assert!(
            suggestion["spec"]["properties"].get(field).is_some(),
            "{field}"
        );
    }
    for field in [
        "suggestionCount",
        "suggestions",
        "conditions",
        "algorithmSettings",
    ] {
        assert!(
            suggestion["status"]["properties"].get(field).is_some(),
            "{field}"
        );
    }

    let trial = schema("Trial")["properties"].clone();
    for field in [
        "objective",
        "parameterAssignments",
        "earlyStoppingRules",
        "runSpec",
        "metricsCollector",
        "primaryPodLabels",
        "primaryContainerName",
        "successCondition",
        "failureCondition",
        "retainRun",
        "labels",
    ] {
        assert!(trial["spec"]["properties"].get(field).is_some(), "{field}");
    }
    for field in ["startTime", "completionTime", "conditions", "observation"] {
        assert!(
            trial["status"]["properties"].get(field).is_some(),
            "{field}"
        );
    }
}

#[test]
fn the_schema_check_reports_unknown_fields_and_wrong_types() {
    let document = json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "bad"},
        "spec": {"maxTrialCount": "twelve", "parallelTrialcount": 3}
    });
    assert_eq!(
        problems(&document, &schema("Experiment")),
        [
            r#".spec.maxTrialCount: expected integer, found "twelve""#,
            ".spec.parallelTrialcount: unknown field"
        ]
    );
}

//! Early-stopping rules by the names and settings users write in `spec.earlyStopping`.
//!
//! `medianstop` is Katib's rule with Katib's settings (`min_trials_required`, `start_step`);
//! `percentile` and `asha` are Sextant's additions.

use sextant_algorithms::early_stopping::{
    AshaStop, InvalidSetting, MedianStop, PercentileStop, Rule,
};

use crate::registry::SettingError;

/// Early-stopping rules Sextant serves, in the order shown to users.
pub const AVAILABLE_RULES: &[&str] = &["medianstop", "percentile", "asha"];

/// Builds the rule `name` with Katib-style `settings` (name, value).
pub fn configure_early_stopping(
    name: &str,
    settings: &[(String, String)],
) -> Result<Rule, SettingError> {
    let accepted: &[&str] = match name {
        "medianstop" => &["min_trials_required", "start_step"],
        "percentile" => &[
            "percentile",
            "min_trials_required",
            "start_step",
            "interval",
        ],
        "asha" => &["min_resource", "reduction_factor", "max_resource"],
        other => {
            return Err(SettingError::BadValue {
                algorithm: other.to_string(),
                name: "algorithmName".to_string(),
                value: other.to_string(),
                message: format!(
                    "unknown early-stopping rule; accepted: {}",
                    AVAILABLE_RULES.join(", ")
                ),
            });
        }
    };
    let mut values = std::collections::BTreeMap::new();
    for (setting, value) in settings {
        if !accepted.contains(&setting.as_str()) {
            return Err(SettingError::UnknownSetting {
                algorithm: name.to_string(),
                name: setting.clone(),
                accepted: accepted.join(", "),
            });
        }
        values.insert(setting.as_str(), value.as_str());
    }
    let number = |setting: &str| -> Result<Option<f64>, SettingError> {
        let Some(raw) = values.get(setting) else {
            return Ok(None);
        };
        raw.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| SettingError::BadValue {
                algorithm: name.to_string(),
                name: setting.to_string(),
                value: raw.to_string(),
                message: "expected a number".to_string(),
            })
    };
    let integer = |setting: &str| -> Result<Option<i64>, SettingError> {
        let Some(raw) = values.get(setting) else {
            return Ok(None);
        };
        raw.trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| SettingError::BadValue {
                algorithm: name.to_string(),
                name: setting.to_string(),
                value: raw.to_string(),
                message: "expected an integer".to_string(),
            })
    };
    let count = |setting: &str, default: usize| -> Result<usize, SettingError> {
        Ok(match integer(setting)? {
            None => default,
            Some(v) => usize::try_from(v).map_err(|_| SettingError::BadValue {
                algorithm: name.to_string(),
                name: setting.to_string(),
                value: v.to_string(),
                message: "expected a non-negative integer".to_string(),
            })?,
        })
    };
    let rule = match name {
        "medianstop" => {
            let defaults = MedianStop::default();
            Rule::Median(MedianStop {
                min_trials_required: count("min_trials_required", defaults.min_trials_required)?,
                start_step: integer("start_step")?.unwrap_or(defaults.start_step),
            })
        }
        "percentile" => {
            let defaults = PercentileStop::default();
            Rule::Percentile(PercentileStop {
                percentile: number("percentile")?.unwrap_or(defaults.percentile),
                min_trials_required: count("min_trials_required", defaults.min_trials_required)?,
                start_step: integer("start_step")?.unwrap_or(defaults.start_step),
                interval: integer("interval")?.unwrap_or(defaults.interval),
            })
        }
        _ => {
            let defaults = AshaStop::default();
            let eta = integer("reduction_factor")?.map_or(Ok(defaults.reduction_factor), |v| {
                u32::try_from(v).map_err(|_| SettingError::BadValue {
                    algorithm: name.to_string(),
                    name: "reduction_factor".to_string(),
                    value: v.to_string(),
                    message: "expected an integer of at least 2".to_string(),
                })
            })?;
            Rule::Asha(AshaStop {
                min_resource: integer("min_resource")?.unwrap_or(defaults.min_resource),
                reduction_factor: eta,
                max_resource: integer("max_resource")?.unwrap_or(defaults.max_resource),
            })
        }
    };
    rule.validate().map_err(|e| invalid(name, e))?;
    Ok(rule)
}

fn invalid(rule: &str, error: InvalidSetting) -> SettingError {
    SettingError::BadValue {
        algorithm: rule.to_string(),
        name: error.setting.to_string(),
        value: error.value.clone(),
        message: format!("accepted: {}", error.accepted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn medianstop_takes_katibs_settings_and_defaults() {
        assert_eq!(
            configure_early_stopping("medianstop", &[]).unwrap(),
            Rule::Median(MedianStop::default())
        );
        let rule = configure_early_stopping(
            "medianstop",
            &settings(&[("min_trials_required", "2"), ("start_step", "3")]),
        )
        .unwrap();
        assert_eq!(
            rule,
            Rule::Median(MedianStop {
                min_trials_required: 2,
                start_step: 3
            })
        );
    }

    #[test]
    fn asha_and_percentile_settings() {
        let rule = configure_early_stopping(
            "asha",
            &settings(&[
                ("min_resource", "1"),
                ("reduction_factor", "2"),
                ("max_resource", "16"),
            ]),
        )
        .unwrap();
        assert_eq!(
            rule,
            Rule::Asha(AshaStop {
                min_resource: 1,
                reduction_factor: 2,
                max_resource: 16
            })
        );
        let rule =
            configure_early_stopping("percentile", &settings(&[("percentile", "25")])).unwrap();
        assert!(
            matches!(rule, Rule::Percentile(PercentileStop { percentile, .. }) if percentile == 25.0)
        );
    }

    #[test]
    fn errors_name_the_setting_and_the_accepted_range() {
        let err =
            configure_early_stopping("asha", &settings(&[("reduction_factor", "1")])).unwrap_err();
        assert_eq!(err.setting_name(), Some("reduction_factor"));
        assert!(err.to_string().contains("accepted"), "{err}");
        let err = configure_early_stopping("medianstop", &settings(&[("start_step", "soon")]))
            .unwrap_err();
        assert!(err.to_string().contains("expected an integer"), "{err}");
        let err =
            configure_early_stopping("medianstop", &settings(&[("interval", "2")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("accepted: min_trials_required, start_step"),
            "{err}"
        );
        let err = configure_early_stopping("earlystop", &[]).unwrap_err();
        assert!(
            err.to_string().contains("medianstop, percentile, asha"),
            "{err}"
        );
    }
}

//! Label and field selectors as Kubernetes reads them from `labelSelector` and `fieldSelector`.
//!
//! Labels: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by commas.
//! Fields: `=`, `==` and `!=` on `metadata.name`, `metadata.namespace` and any other dotted path
//! of string fields (Kubernetes allows only a few per kind; the fake does not check which).

use serde_json::Value;

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Parses a label selector; `None` or empty selects everything.
    pub fn labels(text: Option<&str>) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(text.unwrap_or("")) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term)?);
        }
        Ok(Selector(requirements))
    }

    /// Parses a field selector (equality forms only).
    pub fn fields(text: Option<&str>) -> Result<Self, String> {
        let selector = Selector::labels(text)?;
        match selector.0.iter().find(|r| {
            matches!(r, Requirement::Exists(_) | Requirement::DoesNotExist(_))
                || matches!(r, Requirement::In(_, v) | Requirement::NotIn(_, v) if v.len() != 1)
        }) {
            Some(r) => Err(format!("field selectors take =, == or != only: {r:?}")),
            None => Ok(selector),
        }
    }

    /// Whether `metadata.labels` (an object, or null) is selected.
    pub fn matches_labels(&self, labels: &Value) -> bool {
        self.0.iter().all(|r| r.holds(|key| labels[key].as_str()))
    }

    /// Whether an object is selected by its fields, named by dotted paths.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.0.iter().all(|r| {
            r.holds(|path| {
                path.split('.')
                    .try_fold(object, |v, segment| v.get(segment))
                    .and_then(Value::as_str)
            })
        })
    }
}

impl Requirement {
    fn holds<'a>(&self, value_of: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Requirement::In(key, values) => {
                value_of(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
            Requirement::NotIn(key, values) => {
                value_of(key).is_none_or(|v| values.iter().all(|x| x != v))
            }
            Requirement::Exists(key) => value_of(key).is_some(),
            Requirement::DoesNotExist(key) => value_of(key).is_none(),
        }
    }
}

/// Splits on the commas that are not inside `( )`.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let one = |key: &str, value: &str| (key.trim().to_string(), vec![value.trim().to_string()]);
    if let Some((key, value)) = term.split_once("!=") {
        let (key, values) = one(key, value);
        return Ok(Requirement::NotIn(key, values));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        let (key, values) = one(key, value);
        return Ok(Requirement::In(key, values));
    }
    for (word, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(word) {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("set in {term:?} needs parentheses"))?;
            let values = inner.split(',').map(|v| v.trim().to_string()).collect();
            let key = key.trim().to_string();
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    match term.strip_prefix('!') {
        Some(key) => Ok(Requirement::DoesNotExist(key.trim().to_string())),
        None if term.contains(char::is_whitespace) => {
            Err(format!("unreadable selector term {term:?}"))
        }
        None => Ok(Requirement::Exists(term.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_forms() {
        let labels = json!({"app": "web", "tier": "front"});
        let selects = |s: &str| Selector::labels(Some(s)).unwrap().matches_labels(&labels);
        assert!(selects("app=web"));
        assert!(selects("app==web,tier"));
        assert!(selects("app in (db, web),!missing"));
        assert!(selects("tier notin (back)"));
        assert!(!selects("app!=web"));
        assert!(!selects("app=web,tier=back"));
        assert!(!selects("missing"));
        assert!(Selector::labels(None).unwrap().matches_labels(&Value::Null));
    }

    #[test]
    fn field_forms() {
        let object = json!({"metadata": {"name": "a", "namespace": "ns"}});
        let selects = |s: &str| Selector::fields(Some(s)).unwrap().matches_fields(&object);
        assert!(selects("metadata.name=a"));
        assert!(selects("metadata.namespace==ns,metadata.name!=b"));
        assert!(!selects("metadata.name=b"));
        assert!(Selector::fields(Some("metadata.name")).is_err());
    }
}

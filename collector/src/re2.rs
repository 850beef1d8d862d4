//! Go RE2 filter syntax, as Katib users write it, in the `regex` crate's dialect.
//!
//! Katib compiles `metricsFormat` filters with Go's `regexp`, and the two dialects agree on almost
//! everything. They part ways in a few spots where Go reads a character literally and `regex`
//! gives it a meaning or an error. The first matters a lot, because Katib's own documented filter,
//! `{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}`, relies on it:
//!
//! - A `{` that does not start a counted repetition (`{n}`, `{n,}`, `{n,m}`) is a literal in Go
//!   and an error in `regex`. It becomes `\{`. (So does the `{` of `\b{start}`, which Go reads as
//!   `\b` followed by literal text.)
//! - `\Q…\E` quotes literal text in Go; `regex` has no such escape. The text is escaped instead.
//! - Inside a character class, `[` (other than `[:alpha:]`-style classes), `&` and `~` are
//!   literals in Go but nest classes or form set operators (`&&`, `~~`) in `regex`. They are
//!   escaped.
//!
//! Everything else is copied unchanged, so an invalid pattern stays invalid and the `regex` error
//! points at what the user wrote. A pattern that needs no change is borrowed, not copied.
use std::borrow::Cow;

/// `pattern` (Go RE2 syntax) rewritten so that the `regex` crate reads it as Go would.
pub(crate) fn to_rust_syntax(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains(['{', '[', '\\']) {
        return Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        match c {
            '\\' if rest.starts_with("\\Q") => rest = copy_quoted(&rest[2..], &mut out),
            '\\' => rest = copy_escape(rest, &mut out),
            '[' => rest = copy_class(rest, &mut out),
            '{' if repetition_len(rest).is_none() => {
                out.push_str("\\{");
                rest = &rest[1..];
            }
            '{' => {
                let len = repetition_len(rest).unwrap_or(1);
                out.push_str(&rest[..len]);
                rest = &rest[len..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if out == pattern {
        Cow::Borrowed(pattern)
    } else {
        Cow::Owned(out)
    }
}

/// Length of the counted repetition (`{n}`, `{n,}`, `{n,m}`) that starts `text`, if one does.
fn repetition_len(text: &str) -> Option<usize> {
    let inner = text.strip_prefix('{')?;
    let close = inner.find('}')?;
    let body = &inner[..close];
    let (min, max) = body.split_once(',').unwrap_or((body, "0"));
    let all_digits = |digits: &str| digits.bytes().all(|byte| byte.is_ascii_digit());
    if min.is_empty() || !all_digits(min) || !all_digits(max) {
        return None;
    }
    Some(close + 2)
}

/// Copies the `\Q` quotation whose text starts `text`, escaped; returns what follows its `\E`.
fn copy_quoted<'p>(text: &'p str, out: &mut String) -> &'p str {
    let (quoted, rest) = match text.find("\\E") {
        Some(end) => (&text[..end], &text[end + 2..]),
        None => (text, ""),
    };
    out.push_str(&regex::escape(quoted));
    rest
}

/// Copies the escape sequence that starts `text` (a backslash) whole, including the braces of
/// `\p{Greek}` and `\x{41}`; returns what follows it.
fn copy_escape<'p>(text: &'p str, out: &mut String) -> &'p str {
    let mut chars = text.char_indices().skip(1);
    let Some((at, escaped)) = chars.next() else {
        // A trailing backslash: left for the regex parser to report.
        out.push_str(text);
        return "";
    };
    let mut end = at + escaped.len_utf8();
    if matches!(escaped, 'p' | 'P' | 'x') && text[end..].starts_with('{') {
        end = text[end..]
            .find('}')
            .map_or(text.len(), |close| end + close + 1);
    }
    out.push_str(&text[..end]);
    &text[end..]
}

/// Copies the character class that starts `text` (a `[`), escaping what Go reads literally;
/// returns what follows its closing `]`.
fn copy_class<'p>(text: &'p str, out: &mut String) -> &'p str {
    out.push('[');
    let mut rest = &text[1..];
    if let Some(after) = rest.strip_prefix('^') {
        out.push('^');
        rest = after;
    }
    // A `]` first in the class is a literal in both dialects.
    if let Some(after) = rest.strip_prefix(']') {
        out.push(']');
        rest = after;
    }
    while let Some(c) = rest.chars().next() {
        match c {
            ']' => {
                out.push(']');
                return &rest[1..];
            }
            '\\' => rest = copy_escape(rest, out),
            '[' if rest.starts_with("[:") => {
                let len = rest.find(":]").map_or(rest.len(), |close| close + 2);
                out.push_str(&rest[..len]);
                rest = &rest[len..];
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                rest = &rest[1..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    // Unclosed: left for the regex parser to report.
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_braces_are_escaped_and_repetitions_kept() {
        assert_eq!(
            to_rust_syntax(r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"),
            r"\{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"
        );
        assert_eq!(to_rust_syntax(r"a{2}b{2,}c{2,5}"), r"a{2}b{2,}c{2,5}");
        assert_eq!(to_rust_syntax(r"a{,5}"), r"a\{,5}");
        assert_eq!(to_rust_syntax(r"a{x}"), r"a\{x}");
        assert_eq!(to_rust_syntax(r"a{"), r"a\{");
        assert_eq!(to_rust_syntax(r"\b{start}"), r"\b\{start}");
    }

    #[test]
    fn escapes_with_braces_are_copied_whole() {
        for pattern in [r"\p{Greek}+", r"\P{L}", r"\x{41}", r"\{a\}", r"[\p{L}]"] {
            assert!(
                matches!(to_rust_syntax(pattern), Cow::Borrowed(_)),
                "{pattern}"
            );
        }
    }

    #[test]
    fn quoted_text_and_class_literals() {
        assert_eq!(to_rust_syntax(r"\Qa.b{\E(x)"), r"a\.b\{(x)");
        assert_eq!(to_rust_syntax(r"\Qa.b"), r"a\.b");
        assert_eq!(to_rust_syntax(r"[[]"), r"[\[]");
        assert_eq!(to_rust_syntax(r"[a&&b~~c]"), r"[a\&\&b\~\~c]");
        assert_eq!(to_rust_syntax(r"[[:alpha:]{]"), r"[[:alpha:]{]");
        assert_eq!(to_rust_syntax(r"[]a]{"), r"[]a]\{");
        assert_eq!(to_rust_syntax(r"[^]a]"), r"[^]a]");
    }

    #[test]
    fn translations_compile_and_match_like_go() {
        let cases = [
            (r"{metricName: (\w+)}", "{metricName: loss}", true),
            (r"[[]x", "[x", true),
            (r"[a&&b]", "&", true),
            (r"\Q1+1\E", "1+1", true),
            (r"\Q1+1\E", "11", false),
        ];
        for (pattern, haystack, matches) in cases {
            let regex = regex::Regex::new(&to_rust_syntax(pattern)).unwrap();
            assert_eq!(regex.is_match(haystack), matches, "{pattern} on {haystack}");
        }
    }

    #[test]
    fn broken_patterns_stay_broken_and_never_panic() {
        for pattern in [
            "(", "[", "[a", "\\", "a\\", "[\\", "\\p{", "[[:", "{", "é{é", "[é",
        ] {
            let _ = to_rust_syntax(pattern);
        }
        assert!(regex::Regex::new(&to_rust_syntax("(a")).is_err());
        assert!(regex::Regex::new(&to_rust_syntax("[a")).is_err());
    }
}

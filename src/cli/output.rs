//! Output for people (aligned tables) and for scripts (JSON, YAML).

use std::io::Write;

use serde::Serialize;

use super::CliError;

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML.
pub fn print_structured<T: Serialize>(format: OutputFormat, value: &T) -> Result<(), CliError> {
    write_stdout(&structured_text(format, value)?)
}

/// `value` as JSON or YAML text (YAML for `Table` too), ending with a newline.
pub fn structured_text<T: Serialize>(format: OutputFormat, value: &T) -> Result<String, CliError> {
    Ok(match format {
        OutputFormat::Json => {
            serde_json::to_string_pretty(value).map_err(|e| CliError::failed(e.to_string()))? + "\n"
        }
        OutputFormat::Yaml | OutputFormat::Table => {
            serde_saphyr::to_string(value).map_err(|e| CliError::failed(e.to_string()))?
        }
    })
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(e.to_string()))
        }
        _ => Ok(()),
    }
}

/// A table with a header row; columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            rows: vec![header.into_iter().map(Into::into).collect()],
        }
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The rendered table.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A number for a table: 5 significant digits, no trailing zeros; scientific when tiny or huge.
pub fn number(value: f64) -> String {
    const SIGNIFICANT: i32 = 5;
    if value == 0.0 {
        return "0".to_string();
    }
    if !(1e-4..1e9).contains(&value.abs()) {
        return format!("{value:.4e}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (SIGNIFICANT - 1 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A duration like `1m05s`.
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(0.921_387_5), "0.92139");
        assert_eq!(number(0.031_2), "0.0312");
        assert_eq!(number(-2.0), "-2");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(1.5e-7), "1.5000e-7");
    }

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(["NAME", "STATUS"]);
        table.row(["a-long-name", "Succeeded"]);
        assert_eq!(
            table.render(),
            "NAME         STATUS\na-long-name  Succeeded\n"
        );
    }
}

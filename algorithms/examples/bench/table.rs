//! Markdown tables, the output format of every benchmark (they paste into docs/benchmarks.md).

/// A markdown table built row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkdownTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl MarkdownTable {
    /// A table with these column titles.
    pub fn new(header: Vec<String>) -> MarkdownTable {
        MarkdownTable {
            header,
            rows: Vec::new(),
        }
    }

    /// Appends a row (one cell per column).
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as markdown, one line per row, with `|` inside cells escaped.
    pub fn render(&self) -> String {
        let mut out = render_row(&self.header);
        out.push_str(&render_row(&vec!["---".to_owned(); self.header.len()]));
        for row in &self.rows {
            out.push_str(&render_row(row));
        }
        out
    }
}

fn render_row(cells: &[String]) -> String {
    let cells: Vec<String> = cells
        .iter()
        .map(|cell| cell.replace('|', "\\|").replace('\n', " "))
        .collect();
    format!("| {} |\n", cells.join(" | "))
}

/// The cell of a failed measurement: `error: ` and the first line of the message, shortened.
pub fn error_cell(message: &str) -> String {
    /// Long engine messages would stretch the table past a screen.
    const MAX_CHARS: usize = 120;
    let first_line = message.lines().next().unwrap_or("");
    let mut cell: String = first_line.chars().take(MAX_CHARS).collect();
    if cell.len() < first_line.len() {
        cell.push('…');
    }
    format!("error: {cell}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_and_escapes_pipes() {
        let mut table = MarkdownTable::new(vec!["a".into(), "b".into()]);
        table.push(vec!["1".into(), "x|y".into()]);
        assert_eq!(table.render(), "| a | b |\n| --- | --- |\n| 1 | x\\|y |\n");
    }

    #[test]
    fn error_cells_are_short() {
        assert_eq!(error_cell("boom\nmore"), "error: boom");
        let long = "x".repeat(500);
        assert_eq!(error_cell(&long).chars().count(), "error: ".len() + 121);
    }
}

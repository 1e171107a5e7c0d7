//! Go's text/tabwriter, as kubectl uses it twice: `get`'s printers (minwidth 6, padding 3,
//! liggitt/tabwriter's RememberWidths so that `get -w` lines up later rows under the first
//! table) and `describe` (minwidth 0, padding 2). Cells end at tabs; a column is aligned
//! over the consecutive lines that have it; a line's last cell (after its last tab) is never
//! part of a column and is not padded.

/// One tabwriter: its settings and, with RememberWidths, the widest width of each column so
/// far.
#[derive(Clone, Debug)]
pub struct TabWriter {
    minwidth: usize,
    padding: usize,
    remember: Option<Vec<usize>>,
}

impl TabWriter {
    /// kubectl's printers.GetNewTabWriter: minwidth 6, padding 3, RememberWidths.
    pub fn printer() -> TabWriter {
        TabWriter {
            minwidth: 6,
            padding: 3,
            remember: Some(Vec::new()),
        }
    }

    /// kubectl's describe tabwriter: minwidth 0, padding 2.
    pub fn describe() -> TabWriter {
        TabWriter {
            minwidth: 0,
            padding: 2,
            remember: None,
        }
    }

    /// Aligns `text` as one Flush of the Go tabwriter does. A last line without a newline is
    /// printed without one.
    pub fn format(&mut self, text: &str) -> String {
        if text.is_empty() {
            return String::new();
        }
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
        let mut out = String::new();
        let mut widths = Vec::new();
        self.block(&lines, 0, lines.len(), &mut widths, &mut out);
        if !text.ends_with('\n') {
            out.pop();
        }
        out
    }

    /// Go's tabwriter.format: the lines `line0..line1` with the columns before `widths.len()`
    /// already sized.
    fn block(
        &mut self,
        lines: &[Vec<&str>],
        mut line0: usize,
        line1: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A column block starts here: print the lines before it.
            write_lines(lines, line0, this, widths, out);
            line0 = this;
            let mut w = self.minwidth;
            while this < line1 && column + 1 < lines[this].len() {
                w = w.max(width(lines[this][column]) + self.padding);
                this += 1;
            }
            if let Some(max) = &mut self.remember {
                if max.len() <= column {
                    max.resize(column + 1, 0);
                }
                w = w.max(max[column]);
                max[column] = w;
            }
            widths.push(w);
            self.block(lines, line0, this, widths, out);
            widths.pop();
            line0 = this;
        }
        write_lines(lines, line0, line1, widths, out);
    }
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                for _ in width(cell)..widths[j] {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_aligns_like_go() {
        let mut t = TabWriter::describe();
        let text = "Name:\tboot\nNamespace:\tdesceng\nIPs:\n  IP:\t10.244.0.7\nControlled By:\tReplicaSet/x\n";
        assert_eq!(
            t.format(text),
            "Name:       boot\nNamespace:  desceng\nIPs:\n  IP:           10.244.0.7\nControlled By:  ReplicaSet/x\n"
        );
        // Empty columns are two spaces wide; trailing cells are not padded.
        assert_eq!(
            t.format("  NS\tName\t\tCPU\n  a\tbb\t\tc\n"),
            "  NS  Name    CPU\n  a   bb      c\n"
        );
        // Go's example: the d's belong to another column than the b's.
        assert_eq!(
            t.format("a\tb\tc\naa\tbb\tcc\naaa\t\naaaa\tdddd\teeee\n"),
            "a     b   c\naa    bb  cc\naaa   \naaaa  dddd  eeee\n"
        );
        assert_eq!(t.format("a\tb"), "a  b");
    }

    #[test]
    fn printer_has_minimum_widths_and_remembers_them() {
        assert_eq!(
            TabWriter::printer().format("A\tB\nvm\tPod\n"),
            "A     B\nvm    Pod\n"
        );
        let mut t = TabWriter::printer();
        assert_eq!(t.format("NAME\tAGE\nweb\t1s\n"), "NAME   AGE\nweb    1s\n");
        // A later, narrower row keeps the first widths; a wider one widens the column.
        assert_eq!(t.format("w\t2s\n"), "w      2s\n");
        assert_eq!(t.format("a-longer-name\t3s\n"), "a-longer-name   3s\n");
        assert_eq!(t.format("w\t4s\n"), "w               4s\n");
    }
}

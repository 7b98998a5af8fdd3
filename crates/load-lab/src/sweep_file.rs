//! The sweep's CSV: one [`LoadReport`] per row, its columns named as the report's fields. This is
//! the contract between `lab sweep` (which writes it), `lab plot` (which reads it here),
//! `fleetwatch-calibrate` (which reads the columns it needs by name) and whoever analyses a sweep
//! elsewhere: rename a field and those readers break.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::LoadReport;
use crate::error::{LabError, Result};

/// A sweep CSV being written: each row is flushed as its run ends, so an interrupted sweep keeps
/// what it measured.
#[derive(Debug)]
pub struct SweepWriter {
    path: PathBuf,
    writer: Mutex<csv::Writer<File>>,
}

impl SweepWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let writer = csv::Writer::from_path(path).map_err(|e| csv_error(path, &e))?;
        Ok(SweepWriter {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one run's row and flushes it to the file.
    pub fn append(&self, report: &LoadReport) -> Result<()> {
        // A panic mid-row leaves at worst a short last row, which `read` reports by line.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer
            .serialize(report)
            .map_err(|e| csv_error(&self.path, &e))?;
        writer
            .flush()
            .map_err(LabError::io("writing the sweep CSV", &self.path))
    }
}

/// The rows of a sweep CSV. A row that does not parse is an error naming the file, the line and
/// the column; a file without rows is an error too.
pub fn read(path: &Path) -> Result<Vec<LoadReport>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, &e))?;
    let headers = reader
        .headers()
        .map_err(|e| row_error(path, &csv::StringRecord::new(), &e))?
        .clone();
    let reports = reader
        .deserialize::<LoadReport>()
        .map(|row| row.map_err(|e| row_error(path, &headers, &e)))
        .collect::<Result<Vec<_>>>()?;
    if reports.is_empty() {
        return Err(LabError::Csv {
            path: path.to_path_buf(),
            message: "no rows; expected the CSV `fleetwatch lab sweep` writes".to_owned(),
        });
    }
    Ok(reports)
}

fn csv_error(path: &Path, e: &csv::Error) -> LabError {
    LabError::Csv {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// `FILE:LINE: column `name`: what is wrong`.
fn row_error(path: &Path, headers: &csv::StringRecord, e: &csv::Error) -> LabError {
    let what = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            let column = err
                .field()
                .and_then(|f| usize::try_from(f).ok())
                .and_then(|f| headers.get(f));
            match column {
                Some(column) => format!("column `{column}`: {}", err.kind()),
                None => err.kind().to_string(),
            }
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, but the header has {expected_len}"),
        _ => e.to_string(),
    };
    let message = match e.position() {
        Some(position) => format!("line {}: {what}", position.line()),
        None => what,
    };
    LabError::Csv {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn report(nodes: usize, cpu: f64) -> LoadReport {
        LoadReport {
            pattern: "idle".to_owned(),
            nodes,
            pods: nodes * 30,
            apiserver_cpu_seconds: cpu,
            ..LoadReport::default()
        }
    }

    #[test]
    fn rows_written_read_back_and_a_bad_row_is_located() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("sweep.csv");
        let writer = SweepWriter::create(&path).expect("create");
        for (nodes, cpu) in [(50, 1.5), (100, 2.25)] {
            writer.append(&report(nodes, cpu)).expect("append");
        }
        let rows = read(&path).expect("read");
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].nodes, rows[1].apiserver_cpu_seconds), (100, 2.25));

        let text = std::fs::read_to_string(&path).expect("text");
        let header = text.lines().next().expect("header");
        let column = header
            .split(',')
            .position(|c| c == "nodes")
            .expect("a nodes column");
        let mut bad: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut fields: Vec<&str> = bad[2].split(',').collect();
        fields[column] = "many";
        bad[2] = fields.join(",");
        std::fs::write(&path, bad.join("\n")).expect("write");
        let message = read(&path).expect_err("bad row").to_string();
        assert!(message.contains("line 3: column `nodes`"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");

        std::fs::write(&path, format!("{header}\n")).expect("write");
        assert!(
            read(&path)
                .expect_err("no rows")
                .to_string()
                .contains("no rows")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_an_error_or_rows_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let tmp = tempfile::tempdir().expect("tempdir");
            let path = tmp.path().join("sweep.csv");
            std::fs::write(&path, &bytes).expect("write");
            let _ = read(&path);
        }
    }
}

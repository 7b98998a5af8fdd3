//! The sweep's plot: API-server CPU and probe p99 against cluster size, one line per pattern.

use std::path::Path;

use crate::error::{LabError, Result};
use crate::load::LoadReport;

/// Draws `reports` (rows of a sweep) as an SVG and a PNG.
pub fn write_plots(_reports: &[LoadReport], svg: &Path, _png: &Path) -> Result<()> {
    Err(LabError::Plot {
        path: svg.to_path_buf(),
        message: "not yet implemented".to_owned(),
    })
}

//! Reading one file under the root, bounded and counted, and what the parsers share: the
//! error that names a line, strict numbers, and lines re-joined for procfs.

use std::fmt;
use std::io::{self, Read as _};
use std::path::Path;

use crate::health::Target;

/// No file is read past this many bytes; a larger one is an error (`too_large`). The largest
/// file read, `/proc/stat`, is a few kilobytes even on a machine of hundreds of CPUs (its
/// `intr` line grows with the interrupts, not the CPUs), so this only stops something that is
/// not the kernel's file at all.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// Larger than [`MAX_FILE_BYTES`]; reading stopped there.
    TooLarge,
    Io(io::Error),
}

/// Reads `path` whole, counting the bytes read in `target`; `None` if it does not exist.
///
/// Invalid UTF-8 is replaced, not refused: a network device's name may hold any byte but `/`,
/// `:` and white space, and one oddly named device must not hide every other series. Where a
/// parser expects names or digits, a replaced byte fails its check like any other character,
/// with the line it is on.
pub(super) fn read(path: &Path, target: &Target) -> Result<Option<String>, ReadError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file of exactly the limit from a larger one.
    let read = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes);
    target.read(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    read.map_err(ReadError::Io)?;
    if bytes.len() > usize::try_from(MAX_FILE_BYTES).unwrap_or(usize::MAX) {
        return Err(ReadError::TooLarge);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// What is wrong with a file's text: the line (1-based; none for the file as a whole) and what
/// was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Malformed {
    pub line: Option<usize>,
    pub message: String,
}

impl Malformed {
    /// Line `line` is not what was expected.
    pub fn line(line: usize, message: impl Into<String>) -> Malformed {
        Malformed {
            line: Some(line),
            message: message.into(),
        }
    }

    /// The file as a whole is wrong (a line is missing, say).
    pub fn file(message: impl Into<String>) -> Malformed {
        Malformed {
            line: None,
            message: message.into(),
        }
    }

    /// As the log shows it: `path:line: message`, or `path: message`.
    pub fn at(&self, path: &Path) -> String {
        match self.line {
            Some(line) => format!("{}:{line}: {}", path.display(), self.message),
            None => format!("{}: {}", path.display(), self.message),
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The non-blank lines of `text`, with their 1-based numbers. Blank lines are skipped: the
/// kernel writes none, and one (a file written by hand for a test, say) says nothing.
pub(super) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| !line.trim().is_empty())
}

/// The non-blank lines of `text` with their numbers, split at white space (any amount).
pub(super) fn fields(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    lines(text).map(|(number, line)| (number, line.split_whitespace().collect()))
}

/// Appends `fields` to `out` as one line, single spaces between them. procfs splits some lines
/// at exactly one space (`/proc/stat`'s `ctxt 5`) and reads the first two lines of
/// `/proc/net/dev` as headers whatever they are, so it is given lines in this form, checked.
pub(super) fn push_line(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(field);
    }
    out.push('\n');
}

/// `s` as a count: ASCII digits only (no sign, no space), and within `u64`.
pub(super) fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `s` in backquotes for a message, cut to 40 characters: messages quote what they reject, and
/// a malformed file's line may be a megabyte long.
pub(super) fn quoted(s: &str) -> String {
    const SHOWN: usize = 40;
    match s.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("`{}…`", &s[..cut]),
        None => format!("`{s}`"),
    }
}

/// Whether `s` is a decimal the way the kernel prints one: digits, a point, digits.
pub(super) fn is_decimal(s: &str) -> bool {
    s.split_once('.').is_some_and(|(whole, fraction)| {
        number(whole).is_some()
            && !fraction.is_empty()
            && fraction.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use fleetwatch_telemetry::exposition::Readiness;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::health::Health;

    fn target() -> Target {
        Health::register(&mut Registry::default())
            .target("host_test", Readiness::default().component("host_test"))
    }

    #[test]
    fn numbers_are_digits_only() {
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "18446744073709551616",
            "1.0",
            "0x1",
            "١",
        ] {
            assert_eq!(number(bad), None, "{bad:?}");
        }
        assert!(is_decimal("0.00") && is_decimal("123.4"));
        assert_eq!(quoted("eth0"), "`eth0`");
        let long = "é".repeat(41);
        assert_eq!(quoted(&long), format!("`{}…`", "é".repeat(40)));
        for bad in ["1", ".5", "5.", "1.2.3", "-1.0", "inf", "NaN", "1e3"] {
            assert!(!is_decimal(bad), "{bad:?}");
        }
    }

    #[test]
    fn lines_are_numbered_as_in_the_file_and_blank_ones_skipped() {
        let text = "a 1\n\n  \n b\t 2  3\n";
        let got: Vec<_> = fields(text).collect();
        assert_eq!(got, vec![(1, vec!["a", "1"]), (4, vec!["b", "2", "3"])]);
        let mut out = String::new();
        push_line(&mut out, &got[1].1);
        assert_eq!(out, "b 2 3\n");
    }

    #[test]
    fn a_message_names_the_file_and_line() {
        let path = Path::new("/host/proc/meminfo");
        assert_eq!(
            Malformed::line(3, "expected `Name: value kB`").at(path),
            "/host/proc/meminfo:3: expected `Name: value kB`"
        );
        assert_eq!(
            Malformed::file("no `MemTotal:` line").at(path),
            "/host/proc/meminfo: no `MemTotal:` line"
        );
    }

    #[test]
    fn reading_is_bounded_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = target();
        assert!(matches!(
            read(&dir.path().join("absent"), &target),
            Ok(None)
        ));
        let exact = dir.path().join("exact");
        let limit = usize::try_from(MAX_FILE_BYTES).expect("fits");
        std::fs::write(&exact, vec![b'1'; limit]).expect("write");
        let text = read(&exact, &target).expect("read").expect("present");
        assert_eq!(text.len(), limit);
        let large = dir.path().join("large");
        std::fs::write(&large, vec![b'1'; limit + 10]).expect("write");
        assert!(matches!(read(&large, &target), Err(ReadError::TooLarge)));
        assert!(matches!(read(dir.path(), &target), Err(ReadError::Io(_))));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dev");
        std::fs::write(&path, b"eth\xff0: 1\n").expect("write");
        let text = read(&path, &target()).expect("read").expect("present");
        assert_eq!(text, "eth\u{fffd}0: 1\n");
    }
}

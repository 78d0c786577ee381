//! Crash-safe file replacement for the standalone state and offsets files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `file` so that a crash leaves either the old or the new content:
/// writes a temp file beside it, fsyncs it, renames it over `file`, then
/// fsyncs the directory so the rename itself is durable. Blocking: call it
/// from a blocking thread.
pub fn replace_file(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = PathBuf::from(format!("{}.tmp", file.display()));
    let mut out = std::fs::File::create(&temp)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&temp, file)?;
    let dir = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        replace_file(&file, b"first, longer content").unwrap();
        replace_file(&file, b"second").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"second");
        assert!(!dir.path().join("state.json.tmp").exists());
    }
}

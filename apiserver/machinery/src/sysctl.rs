//! Kernel settings a daemon changes on the node and gives back on cleanup: the values they
//! had before the daemon's first start are recorded once, in a file of the daemon's state, so
//! restarts do not overwrite them with the daemon's own.

use std::collections::BTreeMap;
use std::path::Path;

/// Sets each `(path, value)` of `settings`, first recording the values they had in `record`
/// (unless a record is already there: the values before the first start are the ones to give
/// back). Returns the settings that could not be written, with why.
pub fn set(record: &Path, settings: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    if !record.exists() {
        let before: BTreeMap<&str, String> = settings
            .iter()
            .filter_map(|(p, _)| Some((*p, std::fs::read_to_string(p).ok()?.trim().to_string())))
            .collect();
        if let Some(dir) = record.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = record.with_extension("tmp");
        let written = std::fs::write(&tmp, serde_json::to_vec(&before).expect("json"))
            .and_then(|()| std::fs::rename(&tmp, record));
        if let Err(e) = written {
            failed.push((record.display().to_string(), e.to_string()));
        }
    }
    for (path, value) in settings {
        if let Err(e) = std::fs::write(path, value) {
            failed.push((path.to_string(), e.to_string()));
        }
    }
    failed
}

/// Gives the settings recorded in `record` their values back, only those among `settings`
/// (a record never writes anything else), and removes the record. No record: nothing to do.
pub fn restore(record: &Path, settings: &[(&str, &str)]) -> Result<(), String> {
    let Ok(bytes) = std::fs::read(record) else {
        return Ok(());
    };
    let before: BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", record.display()))?;
    for (path, value) in &before {
        if settings.iter().any(|(p, _)| p == path) {
            std::fs::write(path, value).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    std::fs::remove_file(record).map_err(|e| format!("{}: {e}", record.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_values_come_back_and_nothing_else_is_written() {
        let dir = std::env::temp_dir().join(format!("tk-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a");
        let b = dir.join("b");
        std::fs::write(&a, "0\n").unwrap();
        std::fs::write(&b, "7").unwrap();
        let a_s = a.to_str().unwrap();
        let record = dir.join("state/record.json");
        assert!(set(&record, &[(a_s, "1")]).is_empty());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "1");
        // A restart sees the daemon's own value: the record keeps the first.
        assert!(set(&record, &[(a_s, "1")]).is_empty());
        std::fs::write(&b, "8").unwrap();
        restore(&record, &[(a_s, "1")]).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "0");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "8");
        assert!(!record.exists());
        // Twice is fine.
        restore(&record, &[(a_s, "1")]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

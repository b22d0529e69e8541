//! Path confinement: files sluice reads or writes on a user's word (directory
//! sources, file and Parquet sinks) stay under `--data-dir` or a root given with
//! `--allow-path`. A relative path is taken from the data directory.
//! `..` is refused outright, and the part of the path that exists is resolved
//! (symlinks included) before it is compared with the roots, so a symlink out of
//! a root is refused too.

use std::path::{Component, Path, PathBuf};

/// The confined, absolute form of `raw`, or why it is refused.
pub fn confine(raw: &str, data_dir: Option<&Path>, allowed: &[PathBuf]) -> Result<PathBuf, String> {
    let given = Path::new(raw);
    if raw.is_empty() {
        return Err("the path is empty".into());
    }
    if given.components().any(|c| c == Component::ParentDir) {
        return Err(format!("path '{raw}' contains '..', which is not allowed"));
    }
    let path = match (given.is_absolute(), data_dir) {
        (true, _) => given.to_path_buf(),
        (false, Some(dir)) => dir.join(given),
        (false, None) => {
            return Err(format!(
                "relative path '{raw}' needs a data directory to be taken from"
            ))
        }
    };
    let roots: Vec<PathBuf> = data_dir
        .into_iter()
        .map(Path::to_path_buf)
        .chain(allowed.iter().cloned())
        .filter_map(|r| r.canonicalize().ok())
        .collect();
    // Resolve the longest existing ancestor; what follows it does not exist yet,
    // so it holds no symlink.
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = existing
        .canonicalize()
        .map_err(|e| format!("cannot resolve path '{raw}': {e}"))?;
    for name in rest.iter().rev() {
        resolved.push(name);
    }
    if roots.iter().any(|root| resolved.starts_with(root)) {
        Ok(resolved)
    } else {
        let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        Err(format!(
            "path '{raw}' ({}) is outside the directories sluice may use ({}); add its directory with --allow-path",
            resolved.display(),
            if shown.is_empty() { "none".to_string() } else { shown.join(", ") }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-paths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    #[test]
    fn relative_paths_live_in_the_data_dir_and_escapes_are_refused() {
        let data = tmp("data");
        let other = tmp("other");
        assert_eq!(
            confine("out/wc", Some(&data), &[]).unwrap(),
            data.join("out/wc")
        );
        let inside = other.join("x");
        assert_eq!(
            confine(
                inside.to_str().unwrap(),
                Some(&data),
                std::slice::from_ref(&other)
            )
            .unwrap(),
            inside
        );
        let e = confine("../etc/passwd", Some(&data), &[]).unwrap_err();
        assert!(e.contains("contains '..'"), "{e}");
        let e = confine("/etc/x", Some(&data), &[]).unwrap_err();
        assert!(e.contains("outside the directories sluice may use"), "{e}");
        // A symlink inside the data dir that points out of it.
        std::os::unix::fs::symlink(&other, data.join("link")).unwrap();
        let e = confine("link/x", Some(&data), &[]).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_dir_all(&other);
    }
}

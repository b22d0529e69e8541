//! The dashboard in a real browser: `tests/browser/dashboard.mjs` drives Debian's
//! headless Chromium with playwright-core against the real binary (see that file
//! for the checks). scripts/test.sh installs Chromium and runs `npm ci` there.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

#[test]
fn the_dashboard_in_headless_chromium() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/test.sh (it runs npm ci there)",
        browser_dir.display()
    );
    let chromium = std::env::var("SLUICE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}: run scripts/test.sh (it installs Debian's chromium)"
    );
    let work = crate::common::fresh_dir("dashboard");
    // SLUICE_SCREENSHOT=docs/dashboard.png renews the README's picture.
    let screenshot = std::env::var("SLUICE_SCREENSHOT")
        .unwrap_or_else(|_| work.join("dashboard.png").display().to_string());
    // The script bounds itself (240 s) and kills the server it started.
    let output = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&browser_dir)
        .env("SLUICE_BIN", BIN)
        .env("SLUICE_CHROMIUM", &chromium)
        .env("SLUICE_WORK", &work)
        .env("SLUICE_SCREENSHOT", &screenshot)
        .output()
        .expect("node runs (Node.js is on the machine)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed (screenshot of the failure in {}):\n{stdout}\n{stderr}",
        work.display()
    );
    assert!(stdout.contains("all checks passed"));
    assert!(Path::new(&screenshot).exists());
    let _ = std::fs::remove_dir_all(&work);
}

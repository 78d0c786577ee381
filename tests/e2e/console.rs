//! The web console at `/ui` in a real headless browser: Debian's chromium,
//! driven over the W3C WebDriver protocol by Debian's chromedriver, against
//! a running `weir standalone`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::{
    Process, STRING_CONVERTERS, Standalone, append, free_port, wait_for_port, wait_until,
};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver session on a chromedriver of the test's own.
struct Browser {
    base: String,
    _driver: Process,
}

impl Browser {
    fn start(dir: &Path) -> Browser {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: scripts/setup.sh installs Debian's chromium and chromium-driver"
            );
        }
        let port = free_port();
        let driver = Process::spawn(
            "chromedriver",
            Command::new("/usr/bin/chromedriver").arg(format!("--port={port}")),
            dir.join("chromedriver.log"),
        );
        wait_for_port(port, "chromedriver");
        let profile = dir.join("chromium-profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,1400",
                    format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let session: Value = ureq::post(&format!("http://127.0.0.1:{port}/session"))
            .send_json(capabilities)
            .unwrap_or_else(|e| panic!("starting a chromium session: {e}"))
            .into_json()
            .unwrap();
        let id = session["value"]["sessionId"].as_str().unwrap();
        Browser {
            base: format!("http://127.0.0.1:{port}/session/{id}"),
            _driver: driver,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let request = ureq::request(method, &format!("{}{path}", self.base));
        let answer = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match answer {
            Ok(response) => Ok(response.into_json::<Value>().unwrap()["value"].take()),
            Err(ureq::Error::Status(_, response)) => {
                Err(response.into_string().unwrap_or_default())
            }
            Err(error) => panic!("chromedriver: {error}"),
        }
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})))
            .unwrap();
    }

    /// The element `selector` finds now, if any.
    fn find(&self, selector: &str) -> Option<String> {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .ok()?;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    /// The visible text of the element `selector` finds, or "" when none does
    /// (or it was replaced in between).
    fn text(&self, selector: &str) -> String {
        self.find(selector)
            .and_then(|element| {
                self.call("GET", &format!("/element/{element}/text"), None)
                    .ok()
            })
            .and_then(|text| text.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn wait_for_text(&self, selector: &str, wanted: &str) -> String {
        let mut seen = String::new();
        wait_until(
            Duration::from_secs(30),
            &format!("{wanted:?} in {selector}"),
            || {
                seen = self.text(selector);
                seen.contains(wanted)
            },
        );
        seen
    }

    /// Clicks the element `selector` finds, once it is there.
    fn click(&self, selector: &str) {
        wait_until(
            Duration::from_secs(30),
            &format!("clicking {selector}"),
            || {
                self.find(selector).is_some_and(|element| {
                    self.call(
                        "POST",
                        &format!("/element/{element}/click"),
                        Some(json!({})),
                    )
                    .is_ok()
                })
            },
        );
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .unwrap()
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let encoded = self.call("GET", "/screenshot", None).unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
    }
}

/// Where screenshots go: under the workspace's `target/`.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("console")
}

#[test]
fn the_console_shows_the_pipeline_pauses_with_a_click_and_shows_a_failed_trace() {
    let dir = tempfile::tempdir().unwrap();
    let weir_server = Standalone::start(dir.path(), "worker", STRING_CONVERTERS);
    let rest = &weir_server.rest;
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "first line\n").unwrap();
    for (name, config) in [
        (
            "ui-src",
            json!({"connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "ui-topic",
                "audit.secret": "s3cret-value"}),
        ),
        (
            "ui-sink",
            json!({"connector.class": "FileStreamSink", "file": output.to_str().unwrap(), "topics": "ui-topic"}),
        ),
        (
            // Its task fails at its first put: the directory does not exist.
            "broken-sink",
            json!({"connector.class": "FileStreamSink", "file": dir.path().join("missing/out.txt").to_str().unwrap(), "topics": "ui-topic"}),
        ),
    ] {
        let (status, body) = rest.put(&format!("/connectors/{name}/config"), &config.to_string());
        assert_eq!(status, 201, "{body}");
    }
    rest.wait_running("ui-src");
    rest.wait_running("ui-sink");
    wait_until(Duration::from_secs(30), "broken-sink's task FAILED", || {
        rest.task_states("broken-sink")
            .iter()
            .any(|(state, _)| state == "FAILED")
    });

    let browser = Browser::start(dir.path());
    browser.open(&format!("{}/ui", rest.base));

    // The pipeline's connectors, their states and their runner.
    browser.wait_for_text(
        r#"tr.connector[data-connector="ui-src"] .connector-state"#,
        "RUNNING",
    );
    browser.wait_for_text(
        r#"tr.connector[data-connector="ui-sink"] .tasks"#,
        "0: RUNNING",
    );
    browser.wait_for_text("#runners tbody", "ui-src-0");

    // The failed task's trace.
    let trace = browser.wait_for_text(
        r#"tr.detail[data-connector="broken-sink"] pre.trace"#,
        "ConnectException",
    );
    assert!(trace.contains("missing/out.txt"), "{trace}");
    assert!(
        browser
            .text(r#"tr.connector[data-connector="broken-sink"] .tasks"#)
            .contains("FAILED")
    );

    // Configs, with secrets hidden.
    browser.click(r#"tr.detail[data-connector="ui-src"] summary"#);
    let config = browser.wait_for_text(
        r#"tr.detail[data-connector="ui-src"] pre.config"#,
        "audit.secret",
    );
    assert!(config.contains(r#""audit.secret": "[hidden]""#), "{config}");
    let page = browser.call("GET", "/source", None).unwrap();
    assert!(!page.as_str().unwrap().contains("s3cret-value"));

    // Pause with a click: the page shows it, and so does the REST API.
    browser.click(r#"tr.connector[data-connector="ui-src"] button[data-action="pause"]"#);
    browser.wait_for_text(
        r#"tr.connector[data-connector="ui-src"] .connector-state"#,
        "PAUSED",
    );
    wait_until(Duration::from_secs(30), "ui-src PAUSED over REST", || {
        rest.all_in_state("ui-src", "PAUSED")
    });
    browser.screenshot(&screenshot_dir().join("paused-and-failed.png"));

    // Validate feedback inline: FileStreamSink needs topics.
    let set_editor = "document.getElementById('editor').value = arguments[0];";
    browser.script(
        set_editor,
        json!([
            json!({"name": "ui-new", "config": {"connector.class": "FileStreamSink",
            "file": dir.path().join("new.txt").to_str().unwrap()}})
            .to_string()
        ]),
    );
    browser.click("#validate");
    let feedback = browser.wait_for_text("#editor-result", "error");
    assert!(feedback.contains("topics"), "{feedback}");
    // Fixed and saved: the new connector appears and runs.
    browser.script(
        set_editor,
        json!([
            json!({"name": "ui-new", "config": {"connector.class": "FileStreamSink",
            "file": dir.path().join("new.txt").to_str().unwrap(), "topics": "ui-topic"}})
            .to_string()
        ]),
    );
    browser.click("#save");
    browser.wait_for_text("#editor-result", "Saved ui-new");
    browser.wait_for_text(
        r#"tr.connector[data-connector="ui-new"] .tasks"#,
        "0: RUNNING",
    );

    // Resume, then watch the sink's records in the live tap view.
    browser.click(r#"tr.connector[data-connector="ui-src"] button[data-action="resume"]"#);
    browser.wait_for_text(
        r#"tr.connector[data-connector="ui-src"] .connector-state"#,
        "RUNNING",
    );
    browser.script(
        "document.getElementById('tap-connector').value = arguments[0];",
        json!(["ui-sink"]),
    );
    browser.click("#tap-start");
    // `open` fired: the runner attached the tap before the page heard back.
    wait_until(Duration::from_secs(30), "the tap open", || {
        browser.find("#tap-state[data-open]").is_some()
    });
    assert_eq!(browser.text("#tap-state"), "tapping ui-sink at after_poll");
    append(&input, "seen in the console\n");
    let tapped = browser.wait_for_text("#tap-records", "value=\"seen in the console\"");
    assert!(tapped.contains("task 0 ui-topic"), "{tapped}");

    // Delete takes a second click to confirm.
    browser.click(r#"tr.connector[data-connector="ui-new"] button[data-action="delete"]"#);
    browser.click(r#"tr.connector[data-connector="ui-new"] button[data-action="delete"].confirm"#);
    wait_until(Duration::from_secs(30), "ui-new deleted", || {
        rest.get("/connectors/ui-new").0 == 404
    });
    wait_until(Duration::from_secs(30), "ui-new gone from the page", || {
        browser
            .find(r#"tr.connector[data-connector="ui-new"]"#)
            .is_none()
    });
    browser.screenshot(&screenshot_dir().join("console.png"));
    // Secrets are never logged either.
    assert!(!weir_server.process.log_text().contains("s3cret-value"));
}

//! The benchmark's output: a progress line on stderr while it runs, a table on stdout and every
//! figure in a JSON document at the end.

use std::{
    io::Write,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

/// One line of the table.
#[derive(Debug, Clone)]
struct Row {
    section: String,
    what: String,
    value: String,
    note: String,
}

/// Figures collected so far.
pub struct Report {
    json: Map<String, Value>,
    rows: Vec<Row>,
    started: Instant,
    last_progress: Arc<Mutex<Instant>>,
}

impl Default for Report {
    fn default() -> Self {
        Self::new()
    }
}

impl Report {
    pub fn new() -> Self {
        Report {
            json: Map::new(),
            rows: Vec::new(),
            started: Instant::now(),
            last_progress: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Sets a top-level figure.
    pub fn set(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_string(), value);
    }

    /// A top-level figure that was not measured: `null`, and `<key>_reason` says why.
    pub fn missing(&mut self, key: &str, reason: &str) {
        self.json.insert(key.to_string(), Value::Null);
        self.json
            .insert(format!("{key}_reason"), Value::String(reason.to_string()));
    }

    /// A figure already set, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.json.get(key)
    }

    /// Adds a table row.
    pub fn row(&mut self, section: &str, what: &str, value: String, note: &str) {
        self.rows.push(Row {
            section: section.to_string(),
            what: what.to_string(),
            value,
            note: note.to_string(),
        });
    }

    /// Rewrites the progress line.
    pub fn progress(&self, stage: &str, detail: &str) {
        print_progress(self.started, stage, detail);
        *self.last_progress.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// As `progress`, at most four times a second (for tight loops).
    pub fn progress_quiet(&self, stage: &str, detail: &str) {
        let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed().as_millis() >= 250 {
            print_progress(self.started, stage, detail);
            *last = Instant::now();
        }
    }

    /// A progress callback for work running elsewhere: `done` of `total`.
    pub fn progress_handle(&self, stage: &str, total: u64) -> impl Fn(u64) + Send + Sync + 'static {
        let started = self.started;
        let stage = stage.to_string();
        move |done| print_progress(started, &stage, &format!("{done}/{total}"))
    }

    /// Ends the progress line.
    pub fn progress_done(&self) {
        eprint!("\r\x1b[K");
        let _ = std::io::stderr().flush();
    }

    /// Adds the machine, the versions and the date.
    pub fn describe_machine(&mut self) {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_kb = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        let uname = command_line("uname", &["-srvm"]);
        let kernel = command_line("uname", &["-r"]);
        let root = super::workspace_root();
        let git_rev = command_line(
            "git",
            &[
                "-C",
                &root.to_string_lossy(),
                "rev-parse",
                "--short",
                "HEAD",
            ],
        );
        let git_dirty = Command::new("git")
            .args([
                "-C",
                &root.to_string_lossy(),
                "status",
                "--porcelain",
                "--untracked-files=no",
            ])
            .output()
            .ok()
            .map(|o| !o.stdout.is_empty());
        let kea = command_line("kea-dhcp6", &["-v"]);
        let perfdhcp = Command::new("perfdhcp").arg("-v").output().ok().map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.is_empty() {
                s = String::from_utf8_lossy(&o.stderr).trim().to_string();
            }
            s
        });
        let date = command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
        self.set(
            "machine",
            json!({
                "cores": cores,
                "cpu_model": cpu_model,
                "mem_total_kb": mem_total_kb,
                "uname": uname,
                "kernel": kernel,
            }),
        );
        self.set(
            "versions",
            json!({
                "git_rev": git_rev,
                "git_dirty": git_dirty,
                "kernel": kernel,
                "kea": kea,
                "perfdhcp": perfdhcp,
                "dhcp_bench": env!("CARGO_PKG_VERSION"),
            }),
        );
        self.set("date", json!(date));
    }

    /// Writes the JSON document (pretty, stable key order).
    pub fn write_json(&mut self, path: &Path) -> Result<()> {
        self.set("bench_seconds", json!(self.started.elapsed().as_secs_f64()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&Value::Object(self.json.clone()))?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The table, grouped by section in the order sections first appeared.
    pub fn table(&self) -> String {
        let w_what = self.rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
        let w_value = self.rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
        let mut out = String::new();
        let mut sections: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !sections.contains(&r.section.as_str()) {
                sections.push(&r.section);
            }
        }
        for section in sections {
            out.push_str(&format!("\n== {section}\n"));
            for r in self.rows.iter().filter(|r| r.section == section) {
                let line = format!("  {:<w_what$}  {:<w_value$}  {}", r.what, r.value, r.note);
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        out
    }
}

fn print_progress(started: Instant, stage: &str, detail: &str) {
    eprint!(
        "\r\x1b[K[dhcp-bench {:>4.0}s] {stage}: {detail}",
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::stderr().flush();
}

/// First line of a command's stdout, `None` when it cannot run.
pub fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

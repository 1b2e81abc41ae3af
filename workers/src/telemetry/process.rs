//! Facts about this process, read at scrape time: `rampd_build_info` and the standard
//! process metrics, named as the Prometheus client libraries name them
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), from `/proc/self` (Linux; elsewhere only the build
//! info). A read that fails leaves its metric out.

use std::fmt::Write;

pub const BUILD_INFO: &str = "rampd_build_info";

/// What `/proc/self` said.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// The build info and process metrics in Prometheus text format.
pub fn render() -> String {
    format(env!("CARGO_PKG_VERSION"), &read())
}

fn format(version: &str, p: &ProcessStats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP {BUILD_INFO} Always 1; the labels say which build this is\n# TYPE {BUILD_INFO} gauge\n{BUILD_INFO}{{version=\"{version}\"}} 1"
    );
    let mut one = |name: &str, kind: &str, help: &str, value: Option<String>| {
        if let Some(v) = value {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    };
    one(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds",
        p.cpu_seconds.map(|v| v.to_string()),
    );
    one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes",
        p.resident_bytes.map(|v| v.to_string()),
    );
    one(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes",
        p.virtual_bytes.map(|v| v.to_string()),
    );
    one(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors",
        p.open_fds.map(|v| v.to_string()),
    );
    one(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors",
        p.max_fds.map(|v| v.to_string()),
    );
    one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds",
        p.start_time_seconds.map(|v| v.to_string()),
    );
    out
}

#[cfg(target_os = "linux")]
fn read() -> ProcessStats {
    use procfs::process::{LimitValue, Process};
    let Ok(me) = Process::myself() else {
        return ProcessStats::default();
    };
    let ticks = procfs::ticks_per_second() as f64;
    let stat = me.stat().ok();
    ProcessStats {
        cpu_seconds: stat.as_ref().map(|s| (s.utime + s.stime) as f64 / ticks),
        resident_bytes: stat.as_ref().map(|s| s.rss * procfs::page_size()),
        virtual_bytes: stat.as_ref().map(|s| s.vsize),
        open_fds: me.fd_count().ok().map(|n| n as u64),
        max_fds: me
            .limits()
            .ok()
            .and_then(|l| match l.max_open_files.soft_limit {
                LimitValue::Value(v) => Some(v),
                LimitValue::Unlimited => None,
            }),
        start_time_seconds: stat.as_ref().and_then(|s| {
            procfs::boot_time_secs()
                .ok()
                .map(|boot| boot as f64 + s.starttime as f64 / ticks)
        }),
    }
}

#[cfg(not(target_os = "linux"))]
fn read() -> ProcessStats {
    ProcessStats::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_what_was_read() {
        let text = format(
            "9.9.9",
            &ProcessStats {
                cpu_seconds: Some(1.5),
                open_fds: Some(12),
                ..ProcessStats::default()
            },
        );
        assert!(
            text.contains("# TYPE rampd_build_info gauge\nrampd_build_info{version=\"9.9.9\"} 1\n")
        );
        assert!(
            text.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n"
            )
        );
        assert!(text.contains("process_open_fds 12\n"));
        assert!(!text.contains("process_max_fds"), "unread: left out");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let p = read();
        assert!(p.cpu_seconds.is_some_and(|c| c >= 0.0));
        assert!(p.resident_bytes.is_some_and(|r| r > 0));
        assert!(p.open_fds.is_some_and(|n| n >= 3));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = p.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }
}

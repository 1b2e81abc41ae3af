//! Per-process accounting from `/proc`: CPU seconds (utime + stime) by PID, peak RSS
//! (`VmHWM`), and for PostgreSQL the whole process tree under the postmaster.

use procfs::process::Process;
use procfs::{Current, CurrentSI, KernelStats};

/// CPU seconds a process (all its threads) has used so far.
pub fn cpu_secs(pid: i32) -> anyhow::Result<f64> {
    let stat = Process::new(pid)?.stat()?;
    Ok(ticks(stat.utime + stat.stime))
}

/// CPU seconds of one thread of this process.
pub fn thread_cpu_secs(tid: i32) -> anyhow::Result<f64> {
    let stat = Process::myself()?.task_from_tid(tid)?.stat()?;
    Ok(ticks(stat.utime + stat.stime))
}

/// CPU seconds of a process tree rooted at `root` (the postmaster): the root itself, the
/// children it has reaped (`cutime + cstime`) and its live children. As a counter it only
/// grows, so a delta over a window counts a backend that exits inside the window with the
/// CPU it used inside the window.
pub fn tree_cpu_secs(root: i32) -> anyhow::Result<f64> {
    let stat = Process::new(root)?.stat()?;
    let reaped = (stat.cutime + stat.cstime).max(0) as u64;
    let mut total = stat.utime + stat.stime + reaped;
    for child in children(root) {
        if let Ok(s) = child.stat() {
            total += s.utime + s.stime;
        }
    }
    Ok(ticks(total))
}

/// Peak resident set size of a process, in bytes (`VmHWM`).
pub fn peak_rss_bytes(pid: i32) -> anyhow::Result<u64> {
    let status = Process::new(pid)?.status()?;
    Ok(status.vmhwm.unwrap_or(0) * 1024)
}

/// Proportional set size of a process tree, in bytes: shared memory (PostgreSQL's shared
/// buffers) is split among the processes that map it instead of counted once per process.
pub fn tree_pss_bytes(root: i32) -> u64 {
    std::iter::once(Process::new(root))
        .filter_map(Result::ok)
        .chain(children(root))
        .filter_map(|p| p.smaps_rollup().ok())
        .filter_map(|r| {
            r.memory_map_rollup
                .0
                .first()
                .and_then(|m| m.extension.map.get("Pss").copied())
        })
        .sum()
}

/// Processes of the tree under `root` (its direct children; the postmaster forks every
/// backend and auxiliary process itself).
fn children(root: i32) -> Vec<Process> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter(|p| p.stat().is_ok_and(|s| s.ppid == root))
        .collect()
}

/// The calling thread's id (for [`thread_cpu_secs`]).
pub fn current_tid() -> i32 {
    // `/proc/thread-self` links to `<pid>/task/<tid>`.
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// Machine-wide CPU seconds spent busy (everything but idle and iowait), over all cores.
pub fn machine_busy_secs() -> f64 {
    KernelStats::current()
        .map(|k| {
            let t = k.total;
            ticks(
                t.user
                    + t.nice
                    + t.system
                    + t.irq.unwrap_or(0)
                    + t.softirq.unwrap_or(0)
                    + t.steal.unwrap_or(0),
            )
        })
        .unwrap_or(0.0)
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> [f64; 3] {
    let r = |v: f32| (f64::from(v) * 100.0).round() / 100.0;
    procfs::LoadAverage::current()
        .map(|l| [r(l.one), r(l.five), r(l.fifteen)])
        .unwrap_or_default()
}

fn ticks(t: u64) -> f64 {
    t as f64 / procfs::ticks_per_second() as f64
}

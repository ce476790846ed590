//! Process and machine CPU sampling from /proc.

use std::time::Instant;

/// Linux reports /proc CPU times in clock ticks of 1/100 s on every supported platform.
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    broker_ticks: Option<u64>,
    pub broker_rss_kib: Option<u64>,
    client_ticks: Option<u64>,
    machine: Option<MachineTicks>,
}

impl Snapshot {
    pub fn take(broker_pid: Option<u32>) -> Self {
        Snapshot {
            at: Instant::now(),
            broker_ticks: broker_pid.and_then(|p| process_ticks(&format!("/proc/{p}/stat"))),
            broker_rss_kib: broker_pid.and_then(rss_kib),
            client_ticks: process_ticks("/proc/self/stat"),
            machine: machine_ticks(),
        }
    }
}

pub struct Delta {
    pub broker_cpu_us: Option<f64>,
    pub client_cpu_us: Option<f64>,
    /// Cores used by everything except broker and client during the interval.
    pub other_cores: Option<f64>,
    /// Cores the hypervisor gave to other guests while this machine wanted to run ("steal"):
    /// every process here was slowed down, so latency tails of such runs say little.
    pub steal_cores: Option<f64>,
}

impl Delta {
    pub fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let us = |x: Option<u64>, y: Option<u64>| {
            Some(y?.saturating_sub(x?) as f64 / TICKS_PER_SEC * 1e6)
        };
        let broker = us(a.broker_ticks, b.broker_ticks);
        let client = us(a.client_ticks, b.client_ticks);
        let busy = us(a.machine.map(|m| m.busy), b.machine.map(|m| m.busy));
        let steal = us(a.machine.map(|m| m.steal), b.machine.map(|m| m.steal));
        let wall_us = b.at.duration_since(a.at).as_secs_f64() * 1e6;
        let other_cores = match (busy, client) {
            (Some(m), Some(cl)) if wall_us > 0.0 => {
                Some((m - cl - broker.unwrap_or(0.0)) / wall_us)
            }
            _ => None,
        };
        Delta {
            broker_cpu_us: broker,
            client_cpu_us: client,
            other_cores,
            steal_cores: steal.filter(|_| wall_us > 0.0).map(|s| s / wall_us),
        }
    }
}

/// utime + stime of a process (fields 14 and 15 of /proc/PID/stat).
fn process_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat_ticks(&text)
}

fn parse_stat_ticks(text: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces; fields after it start past the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` begins at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&text)
}

fn parse_vm_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Machine-wide CPU time from the first line of /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MachineTicks {
    /// Time spent running something here: all but idle, iowait and steal.
    busy: u64,
    /// Time this machine wanted to run but the hypervisor ran someone else.
    steal: u64,
}

fn machine_ticks() -> Option<MachineTicks> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat(&text)
}

fn parse_proc_stat(text: &str) -> Option<MachineTicks> {
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let steal = *v.get(7)?;
    let busy: u64 = v.iter().take(7).sum::<u64>() - v.get(3)? - v.get(4)?;
    Some(MachineTicks { busy, steal })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let line =
            "1234 (beam smp) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 30 0 5 0 0";
        assert_eq!(parse_stat_ticks(line), Some(325));
    }

    #[test]
    fn vm_rss_in_kib() {
        let status = "Name:\tbeam.smp\nVmPeak:\t 999 kB\nVmRSS:\t  204800 kB\nThreads:\t30\n";
        assert_eq!(parse_vm_rss(status), Some(204_800));
    }

    #[test]
    fn proc_stat_busy_excludes_idle_iowait_and_steal() {
        let text = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(
            parse_proc_stat(text),
            Some(MachineTicks {
                busy: 100 + 5 + 50 + 1 + 2,
                steal: 3
            })
        );
    }

    #[test]
    fn own_process_is_readable() {
        assert!(process_ticks("/proc/self/stat").is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
